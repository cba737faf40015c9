// Dictionaries keyed by names that users choose (spiders, spider arguments, Scrapy settings,
// environment variables): no prototype, so '__proto__', 'constructor' or 'toString' are names
// like any other — kept, listed and looked up as themselves.

export function dict<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/** A JSON object's own value under `key` (never one inherited from Object.prototype). */
export function own<T>(obj: Record<string, T> | null | undefined, key: string): T | undefined {
  return obj && Object.hasOwn(obj, key) ? obj[key] : undefined;
}

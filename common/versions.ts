import { compare, valid } from '@renovatebot/pep440';

/**
 * Orders versions as Scrapyd does: by packaging.version.Version when every version is PEP 440,
 * otherwise by plain string order. Newest last.
 */
export function sortVersions(versions: readonly string[]): string[] {
  const copy = [...versions];
  if (copy.every((v) => valid(v) !== null)) return copy.sort(compare);
  return copy.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export function newestVersion(versions: readonly string[]): string | null {
  const sorted = sortVersions(versions);
  return sorted.length ? sorted[sorted.length - 1]! : null;
}

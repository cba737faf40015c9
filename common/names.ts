// Names that become file paths (project, version, spider, job) must never escape their folder.

export const MAX_NAME_LENGTH = 200;

/** Returns why a name is unusable as a path component, or null when it is fine. */
export function nameProblem(value: string): string | null {
  if (value.length === 0) return 'must not be empty';
  if (value.length > MAX_NAME_LENGTH) return `must be at most ${MAX_NAME_LENGTH} characters`;
  if (value.includes('\0')) return 'must not contain NUL';
  if (value.includes('/') || value.includes('\\')) return "must not contain '/' or '\\'";
  if (value === '.' || value.includes('..')) return "must not be '.' or contain '..'";
  // eslint-disable-next-line no-control-regex
  // C0, DEL and C1 (U+0080–U+009F): what safe_zip refuses in entry names, never shown or stored as-is.
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) return 'must not contain control characters';
  if (value.startsWith('-')) return "must not start with '-'"; // would read as a command-line option
  return null;
}

/** Scrapyd stores versions with every character outside [A-Za-z0-9_-] replaced by '_'. */
export function sanitizeVersion(version: string): string {
  return version.replace(/[^A-Za-z0-9_-]/g, '_');
}

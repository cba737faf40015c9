/** Checks a node URL given by a user or an announcing slave; returns it normalised (no trailing slash). */
export function normaliseNodeUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error(`'${raw}' is not a URL (expected e.g. http://10.0.0.5:6800)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`'${raw}' must use http or https`);
  if (u.username || u.password) throw new Error('give credentials as username and password, not inside the URL');
  if (u.search || u.hash) throw new Error(`'${raw}' must not have a query or fragment`);
  return u.toString().replace(/\/+$/, '');
}

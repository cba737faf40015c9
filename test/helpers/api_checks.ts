// Helpers for the slave API tests: raw HTTP exchanges, the exact Scrapyd envelope, a ZIP
// writer that can produce malicious archives, and file-tree snapshots.
import assert from 'node:assert/strict';
import { readdirSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { findall } from './python_re.ts';
import { DIRECTORY_KEYS, DIRECTORY_PATTERN, HREF_NAME_PATTERN, HREF_PATTERN, JOB_KEYS, JOB_PATTERN, JOBS_PAGE_CHECK, THEAD_SUB } from './scrapydweb_patterns.ts';

export { JOBS_PAGE_CHECK };

export const NODE = 'testnode';

export interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
}

/** One HTTP exchange, keeping the raw body text (no JSON parsing). */
export async function raw(url: string, init: RequestInit = {}): Promise<RawResponse> {
  const r = await fetch(url, { redirect: 'manual', ...init });
  return { status: r.status, headers: r.headers, text: await r.text() };
}

export function qs(params: Record<string, string> | Array<[string, string]>): string {
  const s = new URLSearchParams(Array.isArray(params) ? params : Object.entries(params)).toString();
  return s ? `?${s}` : '';
}

export async function rawGet(base: string, path: string, params: Record<string, string> | Array<[string, string]> = {}, headers: Record<string, string> = {}): Promise<RawResponse> {
  return raw(`${base}${path}${qs(params)}`, { headers });
}

export async function rawPost(base: string, path: string, pairs: Record<string, string> | Array<[string, string]>, headers: Record<string, string> = {}): Promise<RawResponse> {
  const body = new URLSearchParams(Array.isArray(pairs) ? pairs : Object.entries(pairs));
  return raw(`${base}${path}`, { method: 'POST', body, headers });
}

/** multipart addversion; egg may be bytes (sent as a file) or a string (sent as a plain field). */
export async function rawUpload(base: string, project: string | null, version: string | null, egg: Buffer | string | null, headers: Record<string, string> = {}): Promise<RawResponse> {
  const form = new FormData();
  if (project !== null) form.set('project', project);
  if (version !== null) form.set('version', version);
  if (typeof egg === 'string') form.set('egg', egg);
  else if (egg !== null) form.set('egg', new Blob([new Uint8Array(egg)]), 'project.egg');
  return raw(`${base}/addversion.json`, { method: 'POST', body: form, headers });
}

/** Python json.dumps of a string (default ensure_ascii=True). Independent of the daemon's code. */
export function pyStr(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

/** The exact bytes of Scrapyd's error envelope. */
export function errorBody(message: string, node = NODE): string {
  return `{"status": "error", "message": ${pyStr(message)}, "node_name": ${pyStr(node)}}\n`;
}

/** The exact bytes of Scrapyd's ok envelope around an already-serialised payload prefix ('' or '"k": v, '). */
export function okBody(payload: string, node = NODE): string {
  return `{${payload}${payload ? ', ' : ''}"status": "ok", "node_name": ${pyStr(node)}}\n`;
}

/** Asserts the Scrapyd API manners: 200, JSON content type, CORS headers for a GET or POST endpoint. */
export function assertApiHeaders(r: RawResponse, method: 'GET' | 'POST', what = ''): void {
  assert.equal(r.status, 200, `${what}: HTTP status (body ${r.text.slice(0, 300)})`);
  assert.equal(r.headers.get('content-type'), 'application/json', `${what}: content-type`);
  assert.equal(r.headers.get('access-control-allow-origin'), '*', `${what}: ACAO`);
  assert.equal(r.headers.get('access-control-allow-methods'), method === 'GET' ? 'OPTIONS, HEAD, GET' : 'OPTIONS, HEAD, POST', `${what}: ACAM`);
  assert.equal(r.headers.get('access-control-allow-headers'), 'X-Requested-With', `${what}: ACAH`);
  assert.equal(r.headers.get('content-length'), String(Buffer.byteLength(r.text)), `${what}: content-length`);
}

/** Asserts an exact Scrapyd error answer (HTTP 200, status error, the message byte for byte). */
export function assertError(r: RawResponse, method: 'GET' | 'POST', message: string, what = ''): void {
  assertApiHeaders(r, method, what);
  assert.equal(r.text, errorBody(message), what);
}

/** Asserts an error answer whose message matches a pattern (for messages that embed variable text). */
export function assertErrorLike(r: RawResponse, method: 'GET' | 'POST', pattern: RegExp, what = ''): string {
  assertApiHeaders(r, method, what);
  const body = JSON.parse(r.text) as { status: string; message: string; node_name: string };
  assert.deepEqual(Object.keys(body), ['status', 'message', 'node_name'], `${what}: key order`);
  assert.equal(body.status, 'error', `${what}: ${r.text}`);
  assert.equal(body.node_name, NODE);
  assert.match(body.message, pattern, what);
  return body.message;
}

export const NOT_FOUND_PAGE = `
<html>
  <head><title>404 - No Such Resource</title></head>
  <body>
    <h1>No Such Resource</h1>
    <p>Sorry. No luck finding that resource.</p>
  </body>
</html>
`;

// ---------------------------------------------------------------------------------------
// The hand-rolled ZIP writer, for archives no library would write (zip-slip names and the like).

export { rawZip, type RawEntry } from './raw_zip.ts';

// ---------------------------------------------------------------------------------------
// File trees

/** Every path under dir (relative, '/'-separated, directories end in '/'), sorted. Missing dir -> []. */
export function treeListing(dir: string, prefix = ''): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const n of names) {
    const abs = join(dir, n);
    const rel = prefix + n;
    if (lstatSync(abs).isDirectory()) out.push(rel + '/', ...treeListing(abs, rel + '/'));
    else out.push(rel);
  }
  return out.sort();
}

/** Names (with their relative paths) anywhere under dir whose last segment matches re. */
export function findNamed(dir: string, re: RegExp): string[] {
  return treeListing(dir).filter((p) => re.test(p.replace(/\/$/, '').split('/').pop() ?? ''));
}

// ---------------------------------------------------------------------------------------
// ScrapydWeb's parsers of the /jobs page and the /logs/ listings, with its own patterns
// (helpers/scrapydweb_patterns.ts).

function zipKeys(keys: readonly string[], values: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  keys.forEach((k, i) => {
    const v = values[i];
    if (v !== undefined) out[k] = v;
  });
  return out;
}

export interface WebJob { project: string; spider: string; job: string; pid: string; start: string; runtime: string; finish: string; log: string | null; items: string | null; status: 'pending' | 'running' | 'finished' }

/** What ScrapydWeb's JobsView extracts from the /jobs page (with its pending/running/finished rule). */
export function scrapydwebJobs(html: string): WebJob[] {
  assert.ok(html.search(JOBS_PAGE_CHECK) !== -1, 'the /jobs page must contain <body><h1>Jobs</h1> (ScrapydWeb checks it)');
  const text = html.replace(THEAD_SUB, '');
  return findall(JOB_PATTERN, text).map((row) => {
    const r = zipKeys(JOB_KEYS, row);
    const href = (cell: string | undefined) => [...(cell ?? '').matchAll(HREF_PATTERN)][0]?.[1] ?? null;
    return {
      project: r['project'] ?? '', spider: r['spider'] ?? '', job: r['job'] ?? '', pid: r['pid'] ?? '',
      start: r['start'] ?? '', runtime: r['runtime'] ?? '', finish: r['finish'] ?? '',
      log: href(r['href_log']), items: href(r['href_items']),
      status: !r['start'] ? 'pending' : !r['finish'] ? 'running' : 'finished',
    };
  });
}

/** What ScrapydWeb's LogsView/ItemsView extract from a directory listing: [href, name, size, content type]. */
export function scrapydwebListing(html: string, urlPath: string): Array<{ href: string; name: string; size: string; type: string }> {
  const title = urlPath.startsWith('/items/') ? 'Directory listing for /items/' : 'Directory listing for /logs/';
  assert.ok(html.includes(title), `listing must contain '${title}'`);
  return findall(DIRECTORY_PATTERN, html).map((t) => {
    const r = zipKeys(DIRECTORY_KEYS, t);
    const m = [...(r['filename'] ?? '').matchAll(HREF_NAME_PATTERN)][0];
    assert.ok(m, `HREF_NAME_PATTERN must match ${r['filename']}`);
    return { href: m[1] ?? '', name: m[2] ?? '', size: r['size'] ?? '', type: r['content_type'] ?? '' };
  });
}

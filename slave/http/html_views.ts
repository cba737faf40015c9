// HTML pages of the Scrapyd-compatible slave: `/`, `/jobs` and the Twisted-style
// directory listings served under `/logs/` and `/items/`.
//
// Pure functions, no I/O. Every interpolated string goes through `esc()`.
//
// Compatibility notes (see test/html_views_unit.test.ts, which runs ScrapydWeb's own regexes
// against this output):
//
// * Scrapyd 1.6 (scrapyd/website.py) pretty-prints the Jobs page: `<body>\n    <h1>Jobs</h1>`
//   and one `<td>` per line. ScrapydWeb <= 1.5.0 (views/dashboard/jobs.py, utils/poll.py)
//   only accepts the pre-1.5 compact form: it checks `re.search(r'<body><h1>Jobs</h1>', text)`
//   and its JOB_PATTERN (re.X) requires `<tr><td>..</td><td>..</td>` with *no* whitespace
//   between tags. Newer ScrapydWeb releases tolerate whitespace (`\s*`), which the compact
//   form also satisfies. So we keep Scrapyd 1.6's page (head, CSS, thead, three tbody
//   sections, Cancel forms, escaping, time formats) but emit `<body><h1>Jobs</h1>` and
//   each job row on a single line. That parses with every ScrapydWeb version.
// * The Cancel cell keeps Scrapyd's multi-line form on purpose: JOB_PATTERN's cells are
//   `(.*?)` without DOTALL, so a multi-line cell can never be captured as the optional
//   `Items` group when the Items column is hidden.
// * Directory listings use Twisted's stock 4-column DirectoryLister markup (Filename, Size,
//   Content type, Content encoding). Scrapyd >= 1.5 adds a "Last modified" column, which
//   ScrapydWeb <= 1.5.0's DIRECTORY_PATTERN (exactly four `<td>` lines) cannot parse; the
//   4-column form parses with old and new ScrapydWeb. `lastModifiedColumn: true` opts in
//   to Scrapyd 1.6's 5-column form.

export interface HtmlJobRow {
  project: string;
  spider: string;
  job: string;
  pid: number | null;
  start: Date | null;
  end: Date | null;
  /** Root-relative path such as `/logs/p/s/j.log` (see `jobLogPath`); `basePath` is prepended. null = no link (Scrapyd 1.6 omits the link when the file does not exist). */
  logUrl: string | null;
  /** Root-relative path such as `/items/p/s/j.jl` (see `jobItemsPath`); null = no link. */
  itemsUrl: string | null;
  /** Not shown: Scrapyd's Jobs page has no version column. */
  version?: string | null;
}

export interface JobsPageParams {
  /** Rendered in the given order (Scrapyd: queue order per project). */
  pending: HtmlJobRow[];
  /** Rendered in the given order (Scrapyd: launcher slot order). */
  running: HtmlJobRow[];
  /** Rendered in the given order. Scrapyd >= 1.5 lists finished jobs newest first. */
  finished: HtmlJobRow[];
  nodeName: string;
  /** Value of the X-Forwarded-Prefix header (Scrapyd's `prefix_header`), prepended to links. */
  basePath?: string;
  /** Show the Items column (Scrapyd: only when items_dir is local). Default: any row has an itemsUrl. */
  itemsEnabled?: boolean;
  /** Show the Cancel column (Scrapyd: when the cancel.json service exists, which it does by default). Default true. */
  cancelEnabled?: boolean;
  /** Clock used for the Runtime of running jobs. Default `new Date()`. */
  now?: Date;
}

export interface HomePageParams {
  nodeName: string;
  projects: string[];
  version: string;
  logsEnabled: boolean;
  itemsEnabled: boolean;
  basePath?: string;
}

export interface DirEntry {
  name: string;
  isDir: boolean;
  size: number;
  /** Shown instead of `size` when set: a size already formatted elsewhere (a node's listing). */
  sizeText?: string;
  /** Only used when `lastModifiedColumn` is true. */
  mtime?: Date | null;
}

export interface DirectoryListingParams {
  /** The raw request URI (path, plus query string if any), e.g. `/logs/demo/`. Twisted prints `unquote(request.uri)`. */
  urlPath: string;
  entries: DirEntry[];
  /** MIME type for unknown extensions. Scrapyd serves logs_dir/items_dir with `static.File(dir, "text/plain")`. */
  defaultType?: string;
  /** Emit Scrapyd >= 1.5's extra "Last modified" column (breaks ScrapydWeb <= 1.5.0's parser). Default false. */
  lastModifiedColumn?: boolean;
}

// ---------------------------------------------------------------------------------------
// Escaping and Python-compatible helpers

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#x27;',
  // Not escaped by Python's html.escape; encoded here so that a name containing a line
  // break still fits the single-line `(.*?)` cells ScrapydWeb's regexes expect.
  '\n': '&#10;',
  '\r': '&#13;',
};

/** Python's `html.escape(s, quote=True)`, plus CR/LF as character references. */
export function esc(value: string): string {
  return value.replace(/[&<>"'\r\n]/g, (c) => HTML_ESCAPES[c] ?? c);
}

const UNRESERVED = /[A-Za-z0-9_.~-]/;
const utf8 = new TextEncoder();

/** Python's `urllib.parse.quote(s, safe)`: percent-encode UTF-8 bytes except `A-Za-z0-9_.-~` and `safe`. */
export function pyQuote(value: string, safe = '/'): string {
  if (/^[A-Za-z0-9_.~-]*$/.test(value)) return value; // the common case, and a hot path in listjobs
  let out = '';
  for (const ch of value) {
    if (UNRESERVED.test(ch) || (ch.length === 1 && safe.includes(ch))) {
      out += ch;
      continue;
    }
    for (const byte of utf8.encode(ch)) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Python's `urllib.parse.unquote(s)` (UTF-8, errors='replace'; `+` is left alone). */
export function pyUnquote(value: string): string {
  if (!value.includes('%')) return value;
  const decoder = new TextDecoder('utf-8', { fatal: false });
  return value.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    const bytes = new Uint8Array(run.length / 3);
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(run.slice(i * 3 + 1, i * 3 + 3), 16);
    return decoder.decode(bytes);
  });
}

/** Python's default `str` ordering (by code point), used by `sorted()` and Twisted's `listNames()`. */
export function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const ca = ia.next();
    const cb = ib.next();
    if (ca.done === true) return cb.done === true ? 0 : -1;
    if (cb.done === true) return 1;
    const da = ca.value.codePointAt(0) ?? 0;
    const db = cb.value.codePointAt(0) ?? 0;
    if (da !== db) return da < db ? -1 : 1;
  }
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/**
 * `str(no_microseconds(dt))` for a naive local datetime: `YYYY-MM-DD HH:MM:SS`.
 * This is also the format ScrapydWeb parses with `strptime(v, '%Y-%m-%d %H:%M:%S')`.
 */
export function formatScrapydDateTime(d: Date): string {
  return (
    `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/**
 * `str(no_microseconds(end - start))`, i.e. Python's `str(timedelta)` with the microseconds
 * dropped: `H:MM:SS`, or `D day(s), H:MM:SS`. Python normalises negative deltas to
 * `days < 0, 0 <= seconds < 86400`, so dropping microseconds floors toward -infinity
 * (e.g. -0.5s prints `-1 day, 23:59:59`).
 */
export function formatScrapydRuntime(start: Date, end: Date): string {
  const totalSeconds = Math.floor((end.getTime() - start.getTime()) / 1000);
  const days = Math.floor(totalSeconds / 86400);
  const rest = totalSeconds - days * 86400;
  const hours = Math.floor(rest / 3600);
  const minutes = Math.floor((rest % 3600) / 60);
  const seconds = rest % 60;
  const clock = `${hours}:${pad(minutes)}:${pad(seconds)}`;
  return days === 0 ? clock : `${days} day${Math.abs(days) === 1 ? '' : 's'}, ${clock}`;
}

/** Scrapyd's log URL for a job (`/logs/{project}/{spider}/{job}.log`), with each segment percent-encoded. */
export function jobLogPath(project: string, spider: string, job: string): string {
  return `/logs/${pyQuote(project, '')}/${pyQuote(spider, '')}/${pyQuote(job, '')}.log`;
}

/** Scrapyd's items URL for a job (`/items/{project}/{spider}/{job}.jl`), with each segment percent-encoded. */
export function jobItemsPath(project: string, spider: string, job: string): string {
  return `/items/${pyQuote(project, '')}/${pyQuote(spider, '')}/${pyQuote(job, '')}.jl`;
}

// ---------------------------------------------------------------------------------------
// /jobs

type JobColumn = 'Project' | 'Spider' | 'Job' | 'PID' | 'Start' | 'Runtime' | 'Finish' | 'Log' | 'Items' | 'Cancel';

/** Cell values are already-escaped HTML; undefined renders as an empty cell. */
type JobCells = Partial<Record<JobColumn, string>>;

/** The one inline script of the slave's pages (Scrapyd's markup); the CSP allows exactly this by its hash. */
export const CANCEL_CONFIRM_HANDLER = "return confirm('Are you sure?');";

function cancelButton(basePath: string, project: string, job: string): string {
  // Same markup as Scrapyd 1.6's Jobs.cancel_button (leading and trailing newline included).
  return (
    '\n' +
    `<form method="post" onsubmit="${CANCEL_CONFIRM_HANDLER}" action="${esc(basePath)}/cancel.json">\n` +
    `<input type="hidden" name="project" value="${esc(project)}">\n` +
    `<input type="hidden" name="job" value="${esc(job)}">\n` +
    '<input type="submit" style="float: left;" value="Cancel">\n' +
    '</form>\n'
  );
}

function link(basePath: string, url: string | null, text: 'Log' | 'Items'): string | undefined {
  if (url === null) return undefined;
  // Double-quoted href, as in Scrapyd 1.6; ScrapydWeb's HREF_PATTERN accepts ' or ".
  return `<a href="${esc(basePath + url)}">${text}</a>`;
}

function jobRow(headers: readonly JobColumn[], cells: JobCells): string {
  // One line, no whitespace between tags: see the module comment.
  return `<tr>${headers.map((h) => `<td>${cells[h] ?? ''}</td>`).join('')}</tr>`;
}

function indentLines(text: string, prefix: string): string {
  // textwrap.indent: prefix every line that is not whitespace-only.
  return text
    .split('\n')
    .map((line) => (line.trim() === '' ? line : prefix + line))
    .join('\n');
}

export function renderJobsPage(p: JobsPageParams): string {
  const basePath = p.basePath ?? '';
  const now = p.now ?? new Date();
  const all = [...p.pending, ...p.running, ...p.finished];
  const itemsEnabled = p.itemsEnabled ?? all.some((r) => r.itemsUrl !== null);
  const cancelEnabled = p.cancelEnabled ?? true;

  const headers: JobColumn[] = ['Project', 'Spider', 'Job', 'PID', 'Start', 'Runtime', 'Finish', 'Log'];
  if (itemsEnabled) headers.push('Items');
  if (cancelEnabled) headers.push('Cancel');

  const names = (r: HtmlJobRow): JobCells => ({ Project: esc(r.project), Spider: esc(r.spider), Job: esc(r.job) });

  // Scrapyd 1.6 prepare_pending: names + Cancel only.
  const pending = p.pending.map((r) =>
    jobRow(headers, { ...names(r), Cancel: cancelButton(basePath, r.project, r.job) }),
  );

  // prepare_running: PID, Start, Runtime (now - start), Log, Items, Cancel; no Finish.
  const running = p.running.map((r) =>
    jobRow(headers, {
      ...names(r),
      PID: r.pid === null ? undefined : esc(String(r.pid)),
      Start: r.start === null ? undefined : formatScrapydDateTime(r.start),
      Runtime: r.start === null ? undefined : formatScrapydRuntime(r.start, now),
      Log: link(basePath, r.logUrl, 'Log'),
      Items: link(basePath, r.itemsUrl, 'Items'),
      Cancel: cancelButton(basePath, r.project, r.job),
    }),
  );

  // prepare_finished: no PID (ScrapydWeb treats any row with a PID as running) and no Cancel.
  const finished = p.finished.map((r) =>
    jobRow(headers, {
      ...names(r),
      Start: r.start === null ? undefined : formatScrapydDateTime(r.start),
      Runtime: r.start === null || r.end === null ? undefined : formatScrapydRuntime(r.start, r.end),
      Finish: r.end === null ? undefined : formatScrapydDateTime(r.end),
      Log: link(basePath, r.logUrl, 'Log'),
      Items: link(basePath, r.itemsUrl, 'Items'),
    }),
  );

  const ind = '            ';
  const section = (title: string, rows: string[]): string =>
    [
      '        <tbody>',
      `${ind}<tr>`,
      `${ind}    <th colspan="${headers.length}">${title}</th>`,
      `${ind}</tr>`,
      ...rows.map((row) => indentLines(row, ind)),
      '        </tbody>',
    ].join('\n');

  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '    <meta charset="utf-8">',
    '    <meta name="viewport" content="width=device-width, initial-scale=1">',
    `    <meta name="node-name" content="${esc(p.nodeName)}">`,
    '    <title>Scrapyd</title>',
    '    <style>',
    '        body { font-family: system-ui, sans-serif; }',
    '        table { border-collapse: collapse; }',
    '        th, td { border-style: solid; border-width: 1px; }',
    '        tbody > tr:first-child { background-color: #eee; }',
    '        th, td { padding: .5rem; }',
    '        td:nth-child(2), td:nth-child(3) { word-break: break-all; }',
    '    </style>',
    '</head>',
    // ScrapydWeb <= 1.5.0: re.search(r'<body><h1>Jobs</h1>', text) -- keep these adjacent.
    '<body><h1>Jobs</h1>',
    '    <p><a href="./">Go up</a></p>',
    '    <table id="jobs">',
    '        <thead>',
    `${ind}<tr>`,
    ...headers.map((h) => `${ind}    <th>${h}</th>`),
    `${ind}</tr>`,
    '        </thead>',
    section('Pending', pending),
    section('Running', running),
    section('Finished', finished),
    '    </table>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------
// /

export function renderHomePage(p: HomePageParams): string {
  const basePath = esc(p.basePath ?? '');
  const projects = [...p.projects].sort(compareCodePoints);
  const projectHtml =
    projects.length > 0
      ? ['    <p>Scrapy projects:</p>', '    <ul>', ...projects.map((name) => `        <li>${esc(name)}</li>`), '    </ul>']
      : ['    <p>No Scrapy projects yet.</p>'];

  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '    <meta charset="utf-8">',
    '    <meta name="viewport" content="width=device-width, initial-scale=1">',
    '    <title>Scrapyd</title>',
    '    <style>',
    '        body { font-family: system-ui, sans-serif; }',
    '    </style>',
    '</head>',
    '<body>',
    '    <h1>Scrapyd</h1>',
    '',
    '    <ul>',
    `        <li><a href="${basePath}/jobs">Jobs</a></li>`,
    ...(p.itemsEnabled ? [`        <li><a href="${basePath}/items/">Items</a></li>`] : []),
    ...(p.logsEnabled ? [`        <li><a href="${basePath}/logs/">Logs</a></li>`] : []),
    '        <li><a href="https://scrapyd.readthedocs.io/en/latest/">Documentation</a></li>',
    '    </ul>',
    '',
    ...projectHtml,
    '',
    `    <p>Node name: <code>${esc(p.nodeName)}</code>. Version: <code>${esc(p.version)}</code>.</p>`,
    '',
    '    <p>',
    '        This web UI is for monitoring only. To upload projects and schedule crawls, use the API.',
    '        For example, using <a href="https://curl.se/">curl</a>:',
    '    </p>',
    '',
    '    <p>',
    '        <code>curl http://localhost:6800/schedule.json -d project=default -d spider=somespider</code>',
    '    </p>',
    '',
    '    <p>',
    '        See the <a href="https://scrapyd.readthedocs.io/en/latest/">Scrapyd documentation</a> for details.',
    '    </p>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------
// /logs/..., /items/... (twisted.web.static.DirectoryLister)

/**
 * A subset of Python's `mimetypes.types_map` (the real table also reads the host's
 * /etc/mime.types) plus Twisted's additions in `loadMimeTypes()`. `.log` and `.jl` are in
 * neither, so Scrapyd lists them with the default type `[text/plain]`.
 */
const CONTENT_TYPES: Record<string, string> = {
  '.txt': 'text/plain',
  '.json': 'application/json',
  '.html': 'text/html',
  '.htm': 'text/html',
  '.csv': 'text/csv',
  '.xml': 'text/xml',
  '.css': 'text/css',
  '.py': 'text/x-python',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.tar': 'application/x-tar',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.egg': 'application/octet-stream',
  // twisted.web.static.loadMimeTypes additions
  '.conf': 'text/plain',
  '.diff': 'text/plain',
  '.patch': 'text/plain',
  '.java': 'text/plain',
};

/** twisted.web.static.File.contentEncodings */
const CONTENT_ENCODINGS: Record<string, string> = { '.gz': 'gzip', '.bz2': 'bzip2' };

/** Python's `os.path.splitext` on a bare file name (leading dots do not start an extension). */
function splitext(name: string): [string, string] {
  const dot = name.lastIndexOf('.');
  if (dot <= 0) return [name, ''];
  for (let i = 0; i < dot; i++) if (name[i] !== '.') return [name.slice(0, dot), name.slice(dot)];
  return [name, ''];
}

/** twisted.web.static.getTypeAndEncoding */
function typeAndEncoding(name: string, defaultType: string): [string, string | null] {
  const [stem, rawExt] = splitext(name);
  let ext = rawExt.toLowerCase();
  let encoding: string | null = null;
  const enc = CONTENT_ENCODINGS[ext];
  if (enc !== undefined) {
    encoding = enc;
    ext = splitext(stem)[1].toLowerCase();
  }
  return [CONTENT_TYPES[ext] ?? defaultType, encoding];
}

/** twisted.web.static.formatFileSize (`'%i'` truncates toward zero). */
export function formatFileSize(size: number): string {
  if (size < 1024) return `${Math.trunc(size)}B`;
  if (size < 1024 ** 2) return `${Math.trunc(size / 1024)}K`;
  if (size < 1024 ** 3) return `${Math.trunc(size / 1024 ** 2)}M`;
  return `${Math.trunc(size / 1024 ** 3)}G`;
}

/** Scrapyd >= 1.5: `datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M")`. */
function formatModified(d: Date | null | undefined): string {
  if (d === null || d === undefined) return '';
  return `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

interface ListingLine {
  text: string;
  href: string;
  size: string;
  modified: string;
  type: string;
  encoding: string;
}

const DIRECTORY_STYLE = `<style>
.even-dir { background-color: #efe0ef }
.even { background-color: #eee }
.odd-dir {background-color: #f0d0ef }
.odd { background-color: #dedede }
.icon { text-align: center }
.listing {
    margin-left: auto;
    margin-right: auto;
    width: 50%;
    padding: 0.1em;
    }

body { border: 0; padding: 0; margin: 0; background-color: #efefef; }
h1 {padding: 0.1em; background-color: #777; color: white; border-bottom: thin white dashed;}

</style>`;

export function renderDirectoryListing(p: DirectoryListingParams): string {
  const defaultType = p.defaultType ?? 'text/plain';
  const withModified = p.lastModifiedColumn ?? false;

  // File.listNames() sorts by name; DirectoryLister then puts directories before files.
  const sorted = [...p.entries].sort((a, b) => compareCodePoints(a.name, b.name));
  const dirs: ListingLine[] = [];
  const files: ListingLine[] = [];
  for (const entry of sorted) {
    const href = pyQuote(entry.name, '/');
    const text = esc(entry.name);
    const modified = formatModified(entry.mtime);
    if (entry.isDir) {
      dirs.push({ text: `${text}/`, href: `${href}/`, size: '', modified, type: '[Directory]', encoding: '' });
    } else {
      const [mimetype, encoding] = typeAndEncoding(entry.name, defaultType);
      files.push({
        text,
        href,
        size: entry.sizeText !== undefined ? esc(entry.sizeText) : formatFileSize(entry.size),
        modified,
        type: `[${esc(mimetype)}]`,
        encoding: encoding === null ? '' : `[${esc(encoding)}]`,
      });
    }
  }

  // DirectoryLister._buildTableContent: itertools.cycle(['odd', 'even']) over dirs + files.
  // Line layout must stay byte-identical: ScrapydWeb's DIRECTORY_PATTERN matches
  // `<tr\sclass="(odd|even)">\n\s+<td>..</td>\n ... </td>\n</tr>`.
  const tableContent = [...dirs, ...files]
    .map(
      (line, i) =>
        `<tr class="${i % 2 === 0 ? 'odd' : 'even'}">\n` +
        `    <td><a href="${line.href}">${line.text}</a></td>\n` +
        `    <td>${line.size}</td>\n` +
        (withModified ? `    <td>${line.modified}</td>\n` : '') +
        `    <td>${line.type}</td>\n` +
        `    <td>${line.encoding}</td>\n` +
        '</tr>\n',
    )
    .join('');

  // DirectoryLister.render: "Directory listing for " + escape(unquote(request.uri)).
  const header = `Directory listing for ${esc(pyUnquote(p.urlPath))}`;
  const headerCells = ['Filename', 'Size', ...(withModified ? ['Last modified'] : []), 'Content type', 'Content encoding'];

  return (
    '<html>\n' +
    '<head>\n' +
    `<title>${header}</title>\n` +
    `${DIRECTORY_STYLE}\n` +
    '</head>\n' +
    '\n' +
    '<body>\n' +
    `<h1>${header}</h1>\n` +
    '\n' +
    '<table>\n' +
    '    <thead>\n' +
    '        <tr>\n' +
    headerCells.map((h) => `            <th>${h}</th>\n`).join('') +
    '        </tr>\n' +
    '    </thead>\n' +
    '    <tbody>\n' +
    `${tableContent}\n` +
    '    </tbody>\n' +
    '</table>\n' +
    '\n' +
    '</body>\n' +
    '</html>\n'
  );
}

import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  formatFileSize,
  formatScrapydDateTime,
  formatScrapydRuntime,
  jobItemsPath,
  jobLogPath,
  pyUnquote,
  renderDirectoryListing,
  renderHomePage,
  renderJobsPage,
  type HtmlJobRow,
} from '../slave/http/html_views.ts';

import { findall } from './helpers/python_re.ts';

/** re.search(...) is not None (String#search ignores the g flag's lastIndex state). */
function search(re: RegExp, text: string): boolean {
  return text.search(re) !== -1;
}


function zip<T>(keys: readonly string[], values: readonly T[]): Record<string, T> {
  const out: Record<string, T> = {};
  keys.forEach((k, i) => {
    const v = values[i];
    if (v !== undefined) out[k] = v;
  });
  return out;
}

import {
  JOBS_PAGE_CHECK, THEAD_SUB, JOB_PATTERN, JOB_KEYS, POLL_JOB_KEYS, HREF_PATTERN, OLD_JOB_PATTERN, WS_JOB_PATTERN, LOGS_PAGE_CHECK, ITEMS_PAGE_CHECK, DIRECTORY_PATTERN, DIRECTORY_KEYS, HREF_NAME_PATTERN, DIRECTORY_PATTERN_LM,
} from './helpers/scrapydweb_patterns.ts';

/** What JobsView does with the page: strip thead, findall, zip with JOB_KEYS. */
function scrapydwebJobs(html: string, pattern = JOB_PATTERN, keys = JOB_KEYS): Record<string, string>[] {
  const text = html.replace(THEAD_SUB, '');
  return findall(pattern, text).map((row) => zip(keys, row));
}

/** ScrapydWeb's status rule (db_insert_jobs): no start -> pending, no finish -> running. */
function status(job: Record<string, string>): 'pending' | 'running' | 'finished' {
  if (!job['start']) return 'pending';
  if (!job['finish']) return 'running';
  return 'finished';
}

function href(cell: string | undefined): string | null {
  const m = [...(cell ?? '').matchAll(HREF_PATTERN)][0];
  return m?.[1] ?? null;
}

// ---------------------------------------------------------------------------------------
// Fixtures (local-time constructors, so the expectations do not depend on TZ)

const startRun = new Date(2024, 0, 2, 3, 4, 5, 678);
const now = new Date(2024, 0, 2, 4, 6, 7, 100); // 1:02:01.422 later
const startFin = new Date(2023, 11, 31, 23, 59, 59, 999);
const endFin = new Date(2024, 0, 1, 0, 5, 0, 0);

function row(project: string, spider: string, job: string, extra: Partial<HtmlJobRow> = {}): HtmlJobRow {
  return {
    project,
    spider,
    job,
    pid: null,
    start: null,
    end: null,
    logUrl: jobLogPath(project, spider, job),
    itemsUrl: jobItemsPath(project, spider, job),
    ...extra,
  };
}

const pendingRow = row('demo', 'test', 'job-pending', { logUrl: null, itemsUrl: null });
const runningRow = row('demo', 'test', 'job-running', { pid: 4242, start: startRun });
const finishedRow = row('demo', 'other', 'job-finished', { pid: 1111, start: startFin, end: endFin });

function page(extra: Partial<Parameters<typeof renderJobsPage>[0]> = {}): string {
  return renderJobsPage({
    pending: [pendingRow],
    running: [runningRow],
    finished: [finishedRow],
    nodeName: 'node-1',
    now,
    itemsEnabled: true,
    ...extra,
  });
}

// ---------------------------------------------------------------------------------------
// /jobs

test('jobs page passes ScrapydWeb JobsView page check', () => {
  assert.ok(search(JOBS_PAGE_CHECK, page()));
  assert.match(page(), /<title>Scrapyd<\/title>/);
});

test('jobs page: ScrapydWeb JOB_PATTERN extracts pending/running/finished jobs', () => {
  const jobs = scrapydwebJobs(page());
  assert.equal(jobs.length, 3);
  const [pending, running, finished] = jobs;
  assert.ok(pending && running && finished);

  assert.deepEqual(
    { project: pending['project'], spider: pending['spider'], job: pending['job'] },
    { project: 'demo', spider: 'test', job: 'job-pending' },
  );
  assert.equal(status(pending), 'pending');
  assert.equal(pending['pid'], '');
  assert.equal(pending['href_log'], '');
  assert.equal(pending['href_items'], '');

  assert.equal(running['job'], 'job-running');
  assert.equal(status(running), 'running');
  assert.equal(running['pid'], '4242');
  assert.equal(running['start'], '2024-01-02 03:04:05');
  assert.equal(running['runtime'], '1:02:01');
  assert.equal(running['finish'], '');
  assert.equal(href(running['href_log']), '/logs/demo/test/job-running.log');
  assert.equal(href(running['href_items']), '/items/demo/test/job-running.jl');

  assert.equal(finished['spider'], 'other');
  assert.equal(status(finished), 'finished');
  assert.equal(finished['pid'], '', 'finished rows must not carry a PID (poll.py treats a PID as running)');
  assert.equal(finished['start'], '2023-12-31 23:59:59');
  assert.equal(finished['finish'], '2024-01-01 00:05:00');
  assert.equal(finished['runtime'], '0:05:00');
  assert.equal(href(finished['href_log']), '/logs/demo/other/job-finished.log');
  assert.equal(href(finished['href_items']), '/items/demo/other/job-finished.jl');

  // db_insert_jobs(): datetime.strptime(v, '%Y-%m-%d %H:%M:%S')
  for (const j of jobs) for (const k of ['start', 'finish']) assert.match(j[k] ?? '', /^(|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)$/);
});

test('jobs page: poll.py classification (pid -> running, finish -> finished)', () => {
  const jobs = scrapydwebJobs(page(), JOB_PATTERN, POLL_JOB_KEYS);
  const runningJobs = jobs.filter((j) => j['pid']).map((j) => j['job']);
  const finishedJobs = jobs.filter((j) => !j['pid'] && j['finish']).map((j) => j['job']);
  assert.deepEqual(runningJobs, ['job-running']);
  assert.deepEqual(finishedJobs, ['job-finished']);
});

test('jobs page: whitespace-tolerant (post Scrapyd 1.5) pattern parses the same rows', () => {
  const a = scrapydwebJobs(page());
  const b = scrapydwebJobs(page(), WS_JOB_PATTERN);
  assert.deepEqual(b, a);
});

test('jobs page: Items hidden + Cancel shown -> multi-line cancel cell is never captured as Items', () => {
  const html = page({ itemsEnabled: false });
  assert.ok(!html.includes('<th>Items</th>'));
  assert.ok(html.includes('<th>Cancel</th>'));
  assert.ok(html.includes('action="/cancel.json"'));
  const jobs = scrapydwebJobs(html);
  assert.equal(jobs.length, 3);
  for (const j of jobs) assert.equal(j['href_items'], '');
  assert.equal(href(jobs[1]?.['href_log']), '/logs/demo/test/job-running.log');
});

test('jobs page: without the Cancel column even the oldest ScrapydWeb pattern parses it', () => {
  const html = page({ cancelEnabled: false });
  assert.ok(!html.includes('<th>Cancel</th>'));
  const jobs = findall(OLD_JOB_PATTERN, html);
  assert.deepEqual(
    jobs.map((j) => j[2]),
    ['job-pending', 'job-running', 'job-finished'],
  );
});

test('jobs page: Scrapyd 1.6 pretty-printed markup would NOT parse with ScrapydWeb <= 1.5.0 (why rows are compact)', () => {
  const scrapyd16 = '<body>\n    <h1>Jobs</h1>\n<tr>\n    <td>demo</td>\n    <td>test</td>\n    <td>j</td>\n</tr>';
  assert.ok(!search(JOBS_PAGE_CHECK, scrapyd16));
  assert.equal(findall(JOB_PATTERN, scrapyd16).length, 0);
});

test('jobs page: basePath (X-Forwarded-Prefix) is prepended to links and cancel action', () => {
  const html = page({ basePath: '/path/to' });
  const jobs = scrapydwebJobs(html);
  assert.equal(href(jobs[1]?.['href_log']), '/path/to/logs/demo/test/job-running.log');
  assert.ok(html.includes(' action="/path/to/cancel.json">'));
});

test('jobs page: missing log/items files render empty cells (Scrapyd 1.6 checks existence)', () => {
  const html = page({ running: [{ ...runningRow, logUrl: null, itemsUrl: null }] });
  const running = scrapydwebJobs(html)[1];
  assert.equal(running?.['pid'], '4242');
  assert.equal(running?.['href_log'], '');
  assert.equal(running?.['href_items'], '');
});

test('jobs page: empty page still has all three sections', () => {
  const html = renderJobsPage({ pending: [], running: [], finished: [], nodeName: 'n' });
  assert.ok(search(JOBS_PAGE_CHECK, html));
  assert.equal(scrapydwebJobs(html).length, 0);
  for (const s of ['Pending', 'Running', 'Finished']) assert.ok(html.includes(`<th colspan="9">${s}</th>`));
});

test('jobs page: <script> in project/spider/job/node name is escaped', () => {
  const evil = '<script>alert(1)</script>';
  const html = renderJobsPage({
    pending: [row(evil, 'spider"x', `job'${evil}`, { logUrl: null, itemsUrl: null })],
    running: [row(evil, 's', 'j&1', { pid: 7, start: startRun, logUrl: `/logs/${evil}/s/j.log` })],
    finished: [],
    nodeName: evil,
    basePath: '"><script>',
    now,
  });
  assert.ok(!html.includes('<script'), 'no raw <script> tag anywhere');
  const jobs = scrapydwebJobs(html);
  assert.equal(jobs.length, 2);
  assert.equal(jobs[0]?.['project'], '&lt;script&gt;alert(1)&lt;/script&gt;');
  assert.equal(jobs[0]?.['spider'], 'spider&quot;x');
  assert.equal(jobs[0]?.['job'], 'job&#x27;&lt;script&gt;alert(1)&lt;/script&gt;');
  assert.equal(jobs[1]?.['job'], 'j&amp;1');
  assert.equal(jobs[1]?.['pid'], '7');
});

test('jobs page: a newline in a name cannot break the single-line row', () => {
  const html = page({ pending: [row('demo', 'test', 'a\nb', { logUrl: null, itemsUrl: null })] });
  assert.equal(scrapydwebJobs(html)[0]?.['job'], 'a&#10;b');
});

// ---------------------------------------------------------------------------------------
// time formatting

test('time formatting follows str(no_microseconds(...))', () => {
  assert.equal(formatScrapydDateTime(new Date(2024, 1, 3, 4, 5, 6, 999)), '2024-02-03 04:05:06');
  const t0 = new Date(2024, 0, 1, 0, 0, 0, 900);
  const at = (ms: number) => new Date(t0.getTime() + ms);
  assert.equal(formatScrapydRuntime(t0, at(999)), '0:00:00');
  assert.equal(formatScrapydRuntime(t0, at(61_500)), '0:01:01');
  assert.equal(formatScrapydRuntime(t0, at(36_000_000)), '10:00:00');
  assert.equal(formatScrapydRuntime(t0, at(86_400_000 + 3_723_000)), '1 day, 1:02:03');
  assert.equal(formatScrapydRuntime(t0, at(3 * 86_400_000)), '3 days, 0:00:00');
  assert.equal(formatScrapydRuntime(t0, at(-500)), '-1 day, 23:59:59');
  assert.equal(formatScrapydRuntime(t0, at(-2 * 86_400_000 - 1000)), '-3 days, 23:59:59');
});

// ---------------------------------------------------------------------------------------
// /logs/ and /items/ directory listings

function scrapydwebListing(
  html: string,
  url: string,
  pattern = DIRECTORY_PATTERN,
  keys = DIRECTORY_KEYS,
): Record<string, string>[] {
  // LogsView.generate_response()
  return findall(pattern, html).map((tuple) => {
    const r = zip(keys, tuple);
    const m = [...(r['filename'] ?? '').matchAll(HREF_NAME_PATTERN)][0];
    assert.ok(m, `HREF_NAME_PATTERN must match ${r['filename']}`);
    const [, h = '', name = ''] = m;
    return { ...r, href: h.endsWith('/') ? h : url + h, filename: name };
  });
}

test('logs listing root: page check + directories', () => {
  const html = renderDirectoryListing({
    urlPath: '/logs/',
    entries: [
      { name: 'zproject', isDir: true, size: 4096 },
      { name: 'demo', isDir: true, size: 4096 },
      { name: 'stats.json', isDir: false, size: 2048 },
    ],
  });
  assert.ok(search(LOGS_PAGE_CHECK, html));
  assert.ok(html.includes('<title>Directory listing for /logs/</title>'));
  const rows = scrapydwebListing(html, 'http://127.0.0.1:6800/logs/');
  assert.deepEqual(
    rows.map((r) => [r['odd_even'], r.filename, r.href, r['size'], r['content_type'], r['content_encoding']]),
    [
      ['odd', 'demo/', 'demo/', '', '[Directory]', ''],
      ['even', 'zproject/', 'zproject/', '', '[Directory]', ''],
      ['odd', 'stats.json', 'http://127.0.0.1:6800/logs/stats.json', '2K', '[application/json]', ''],
    ],
  );
});

test('logs listing for a spider: log files, gz encoding, sizes', () => {
  const url = 'http://127.0.0.1:6800/logs/demo/test/';
  const html = renderDirectoryListing({
    urlPath: '/logs/demo/test/',
    entries: [
      { name: 'job2.log', isDir: false, size: 5 * 1024 * 1024 + 10 },
      { name: 'job1.log', isDir: false, size: 1023 },
      { name: 'job0.log.gz', isDir: false, size: 1536 },
      { name: 'job1.json', isDir: false, size: 10 },
    ],
  });
  assert.ok(search(LOGS_PAGE_CHECK, html));
  const rows = scrapydwebListing(html, url);
  assert.deepEqual(
    rows.map((r) => [r['odd_even'], r.filename, r.href, r['size'], r['content_type'], r['content_encoding']]),
    [
      ['odd', 'job0.log.gz', `${url}job0.log.gz`, '1K', '[text/plain]', '[gzip]'],
      ['even', 'job1.json', `${url}job1.json`, '10B', '[application/json]', ''],
      ['odd', 'job1.log', `${url}job1.log`, '1023B', '[text/plain]', ''],
      ['even', 'job2.log', `${url}job2.log`, '5M', '[text/plain]', ''],
    ],
  );
});

test('items listing passes ItemsView page check', () => {
  const html = renderDirectoryListing({
    urlPath: '/items/demo/test/',
    entries: [{ name: 'job1.jl', isDir: false, size: 3 }],
  });
  assert.ok(search(ITEMS_PAGE_CHECK, html));
  const rows = scrapydwebListing(html, 'http://h:6800/items/demo/test/');
  assert.deepEqual(rows.map((r) => [r.filename, r.href, r['content_type']]), [
    ['job1.jl', 'http://h:6800/items/demo/test/job1.jl', '[text/plain]'],
  ]);
});

test('listing: names are quoted in href, escaped in text; header is unquoted then escaped', () => {
  const html = renderDirectoryListing({
    urlPath: '/logs/my%20proj/%3Cscript%3E/',
    entries: [
      { name: '<script>alert(1)</script>.log', isDir: false, size: 1 },
      { name: 'a b&c', isDir: true, size: 0 },
    ],
  });
  assert.ok(!html.includes('<script'));
  assert.ok(html.includes('<h1>Directory listing for /logs/my proj/&lt;script&gt;/</h1>'));
  assert.ok(search(LOGS_PAGE_CHECK, html));
  const rows = scrapydwebListing(html, 'u/');
  assert.deepEqual(rows.map((r) => [r.filename, r.href]), [
    ['a b&amp;c/', 'a%20b%26c/'],
    ['&lt;script&gt;alert(1)&lt;/script&gt;.log', 'u/%3Cscript%3Ealert%281%29%3C/script%3E.log'],
  ]);
});

test('listing: Scrapyd 1.6 "Last modified" column is opt-in (old DIRECTORY_PATTERN cannot parse it)', () => {
  const entries = [{ name: 'job1.log', isDir: false, size: 1, mtime: new Date(2024, 4, 6, 7, 8, 9) }];
  const html = renderDirectoryListing({ urlPath: '/logs/demo/test/', entries, lastModifiedColumn: true });
  assert.ok(html.includes('<th>Last modified</th>'));
  assert.ok(html.includes('<td>2024-05-06 07:08</td>'));
  assert.equal(findall(DIRECTORY_PATTERN, html).length, 0);
  const rows = scrapydwebListing(html, 'u/', DIRECTORY_PATTERN_LM, [
    'odd_even',
    'filename',
    'size',
    'last_modified',
    'content_type',
    'content_encoding',
  ]);
  assert.deepEqual(rows.map((r) => [r.filename, r['last_modified'], r['content_type']]), [
    ['job1.log', '2024-05-06 07:08', '[text/plain]'],
  ]);
  // The default 4-column form parses with both the old and the fork pattern.
  const plain = renderDirectoryListing({ urlPath: '/logs/', entries });
  assert.equal(findall(DIRECTORY_PATTERN, plain).length, 1);
  assert.equal(findall(DIRECTORY_PATTERN_LM, plain).length, 1);
});

test('formatFileSize and unquote match Twisted/Python', () => {
  assert.deepEqual([0, 1023, 1024, 1048575, 1048576, 1024 ** 3 * 2.5].map(formatFileSize), ['0B', '1023B', '1K', '1023K', '1M', '2G']);
  assert.equal(pyUnquote('/a%20b/%E4%BD%A0+%zz'), '/a b/你+%zz');
});

// ---------------------------------------------------------------------------------------
// /

test('home page: links, sorted projects, escaping', () => {
  const html = renderHomePage({
    nodeName: 'node<1>',
    projects: ['zeta', 'alpha', '<script>x</script>'],
    version: '1.6.0',
    logsEnabled: true,
    itemsEnabled: false,
    basePath: '/path/to',
  });
  assert.ok(html.includes('<a href="/path/to/jobs">Jobs</a>'));
  assert.ok(html.includes('<a href="/path/to/logs/">Logs</a>'));
  assert.ok(!html.includes('/items/">Items</a>'));
  assert.ok(!html.includes('<script'));
  assert.ok(html.includes('<p>Scrapy projects:</p>'));
  const lis = [...html.matchAll(/<li>([^<]*)<\/li>/g)].map((m) => m[1]);
  assert.deepEqual(lis, ['&lt;script&gt;x&lt;/script&gt;', 'alpha', 'zeta']);
  assert.ok(html.includes('node&lt;1&gt;'));

  const empty = renderHomePage({ nodeName: 'n', projects: [], version: 'v', logsEnabled: false, itemsEnabled: true });
  assert.ok(empty.includes('<p>No Scrapy projects yet.</p>'));
  assert.ok(empty.includes('<a href="/items/">Items</a>'));
  assert.ok(!empty.includes('>Logs</a>'));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  LOGPARSER_VERSION,
  ScrapyLogParser,
  jobKeyFromLogFile,
  logParserStatsFile,
  type LogParserJobStats,
} from '../slave/logs/scrapy_log_parser.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FIXTURE = readFileSync(path.join(HERE, 'fixtures', 'logs', 'scrapy28_quotes.log'), 'utf8');
const FIXED_NOW = new Date(2026, 10, 23, 5, 0, 0);
const META = { project: 'demo', spider: 'quotes', job: 'job1', logPath: '/var/lib/spiderplane/logs/demo/quotes/job1.log' };

function parser(): ScrapyLogParser {
  return new ScrapyLogParser(META, { now: () => FIXED_NOW });
}

/** Feeds text in awkward chunk sizes so lines (and \r\n pairs) straddle chunks. */
function feedOdd(p: ScrapyLogParser, text: string, sizes = [1, 7, 13, 64, 3, 250, 2]): void {
  let i = 0;
  let k = 0;
  while (i < text.length) {
    const n = sizes[k++ % sizes.length]!;
    p.feed(text.slice(i, i + n));
    i += n;
  }
}

function parseAll(text: string, finished = true): { p: ScrapyLogParser; s: LogParserJobStats } {
  const p = parser();
  feedOdd(p, text);
  if (finished) p.end();
  return { p, s: p.stats(Buffer.byteLength(text), finished) };
}

const localTs = (y: number, mo: number, d: number, h: number, mi: number, s: number): number =>
  Math.floor(new Date(y, mo - 1, d, h, mi, s).getTime() / 1000);

test('finished Scrapy 2.8 log: LogParser fields', () => {
  const { s } = parseAll(FIXTURE);

  assert.equal(s.status, 'ok');
  assert.equal(s.logparser_version, LOGPARSER_VERSION);
  assert.equal(s.logparser_version, '0.8.4');
  assert.equal(s.log_path, META.logPath);
  assert.equal(s.json_path, '/var/lib/spiderplane/logs/demo/quotes/job1.json');
  assert.equal(s.json_url, 'http://127.0.0.1:6800/logs/demo/quotes/job1.json');
  assert.equal(s.size, Buffer.byteLength(FIXTURE));

  assert.equal(s.first_log_time, '2026-11-23 04:21:07');
  assert.equal(s.latest_log_time, '2026-11-23 04:22:30');
  assert.equal(s.runtime, '0:01:23');
  assert.equal(s.first_log_timestamp, localTs(2026, 11, 23, 4, 21, 7));
  assert.equal(s.latest_log_timestamp, localTs(2026, 11, 23, 4, 22, 30));

  assert.deepEqual(s.datas, [
    ['2026-11-23 04:21:07', 0, 0, 0, 0],
    ['2026-11-23 04:22:07', 4, 4, 2, 2],
  ]);
  assert.equal(s.pages, 4);
  assert.equal(s.items, 2);

  assert.equal(s.latest_matches.scrapy_version, '2.8.0');
  assert.equal(s.latest_matches.telnet_console, '127.0.0.1:6023');
  assert.equal(s.latest_matches.telnet_password, '8a6f1d2c3b4e5f60');
  assert.equal(s.latest_matches.telnet_username, '');
  assert.equal(s.latest_matches.resuming_crawl, '');
  assert.match(s.latest_matches.latest_crawl, /^2026-11-23 04:21:12 .*Crawled \(200\) <GET https:\/\/quotes\.toscrape\.com\/page\/3\/>/);
  assert.match(s.latest_matches.latest_scrape, /^2026-11-23 04:21:08 .*Scraped from <200/);
  assert.equal(s.latest_matches.latest_item, "{'author': 'J.K. Rowling', 'text': '“It is our choices, Harry, that show what we truly are.”'}");
  assert.match(s.latest_matches.latest_stat, /Crawled 4 pages \(at 4 pages\/min\)/);
  assert.match(s.latest_matches.latest_offsite, /Filtered offsite request to 'www\.goodreads\.com'/);
  assert.match(s.latest_matches.latest_duplicate, /Filtered duplicate request/);
  assert.equal(s.latest_crawl_timestamp, localTs(2026, 11, 23, 4, 21, 12));
  assert.equal(s.latest_scrape_timestamp, localTs(2026, 11, 23, 4, 21, 8));

  const c = s.log_categories;
  assert.deepEqual(Object.keys(c), ['critical_logs', 'error_logs', 'warning_logs', 'redirect_logs', 'retry_logs', 'ignore_logs']);
  assert.deepEqual(c.critical_logs, { count: 0, details: [] });
  assert.equal(c.error_logs.count, 2);
  assert.equal(c.error_logs.details.length, 2);
  assert.match(c.error_logs.details[0]!, /ERROR: Gave up retrying/);
  // The detail of the spider error carries its traceback, up to the next log record.
  assert.match(c.error_logs.details[1]!, /^2026-11-23 04:21:12 \[scrapy\.core\.scraper\] ERROR: Spider error processing/);
  assert.match(c.error_logs.details[1]!, /\nTraceback \(most recent call last\):\n/);
  assert.match(c.error_logs.details[1]!, /\nTypeError: int\(\) argument must be .*'NoneType'$/);
  assert.equal(c.warning_logs.count, 1);
  assert.match(c.warning_logs.details[0]!, /Dropping item without author/);
  assert.equal(c.redirect_logs.count, 1);
  // Two "Retrying" + one "Gave up retrying" in details; the count excludes the latter.
  assert.equal(c.retry_logs.count, 2);
  assert.equal(c.retry_logs.details.length, 3);
  assert.equal(c.ignore_logs.count, 1);
  assert.match(c.ignore_logs.details[0]!, /Ignoring response <503/);

  assert.equal(s.shutdown_reason, 'N/A');
  assert.equal(s.finish_reason, 'finished');

  const cs = s.crawler_stats;
  assert.deepEqual(Object.keys(cs).slice(0, 4), ['source', 'last_update_time', 'last_update_timestamp', 'downloader/request_bytes']);
  assert.equal(cs['source'], 'log');
  assert.equal(cs['last_update_time'], '2026-11-23 04:22:30');
  assert.equal(cs['last_update_timestamp'], localTs(2026, 11, 23, 4, 22, 30));
  assert.equal(cs['downloader/response_status_count/503'], 3);
  assert.equal(cs['elapsed_time_seconds'], 83.308643);
  assert.equal(cs['finish_reason'], 'finished');
  assert.equal(cs['start_time'], 'datetime.datetime(2026, 11, 23, 4, 21, 7, 345678)');
  assert.equal(cs['retry/reason_count/503 Service Unavailable'], 2);
  assert.equal(Object.keys(cs).length, 3 + 38);
  const statKeys = Object.keys(cs).slice(3);
  assert.deepEqual(statKeys, [...statKeys].sort());
  assert.deepEqual(s.crawler_engine, {});

  assert.equal(s.last_update_time, '2026-11-23 05:00:00');
  assert.equal(s.last_update_timestamp, localTs(2026, 11, 23, 5, 0, 0));

  // 115 lines: fewer than 200 non-blank, so the tail is the whole log; head is the first 100.
  assert.equal(s.head.split('\n').length, 100);
  assert.equal(s._head, 100);
  assert.ok(s.head.startsWith('2026-11-23 04:21:07 [scrapy.utils.log] INFO: Scrapy 2.8.0 started'));
  assert.equal(s.tail, FIXTURE.trimEnd());
});

test('the same result for any chunking and for CRLF line endings', () => {
  const strip = (s: LogParserJobStats): Partial<LogParserJobStats> => ({ ...s, size: 0, position: 0 });
  const whole = parser();
  whole.feed(FIXTURE);
  whole.end();
  const expected = strip(whole.stats(0, true));

  for (const sizes of [[1], [2, 3], [4096]]) {
    const p = parser();
    feedOdd(p, FIXTURE, sizes);
    p.end();
    assert.deepEqual(strip(p.stats(0, true)), expected, `chunk sizes ${sizes.join(',')}`);
  }

  const crlf = parser();
  feedOdd(crlf, FIXTURE.replace(/\n/g, '\r\n'), [1, 5, 2]); // many '\r' | '\n' splits
  crlf.end();
  assert.deepEqual(strip(crlf.stats(0, true)), expected);
});

test('running job: finish_reason N/A, counts so far, pages from the logstats line', () => {
  const cut = FIXTURE.indexOf('2026-11-23 04:22:30 [scrapy.core.engine] INFO: Closing spider');
  const { p, s } = parseAll(FIXTURE.slice(0, cut), false);
  assert.equal(s.finish_reason, 'N/A');
  assert.deepEqual(s.crawler_stats, {});
  assert.equal(s.pages, 4);
  assert.equal(s.items, 2);
  assert.equal(s.log_categories.error_logs.count, 2);
  assert.equal(s.log_categories.warning_logs.count, 1);
  assert.equal(s.latest_log_time, '2026-11-23 04:22:07');
  assert.equal(p.errorCount(), 2);
});

test('dumped stats override pages, items and category counts (as LogParser does)', () => {
  const text = FIXTURE.replace("'response_received_count': 4,", "'response_received_count': 30,")
    .replace("'item_scraped_count': 2,", "'item_scraped_count': 20,")
    .replace("'log_count/ERROR': 2,", "'log_count/ERROR': 7,\n 'log_count/CRITICAL': 5,")
    .replace("'downloader/response_status_count/301': 1,", "'downloader/response_status_count/301': 8,\n 'downloader/response_status_count/302': 7,")
    .replace("'finish_reason': 'finished',", "'finish_reason': 'closespider_timeout',");
  const { s } = parseAll(text);
  assert.equal(s.pages, 30);
  assert.equal(s.items, 20);
  assert.equal(s.log_categories.error_logs.count, 7);
  assert.equal(s.log_categories.critical_logs.count, 5);
  assert.equal(s.log_categories.redirect_logs.count, 15);
  assert.equal(s.log_categories.critical_logs.details.length, 0);
  // Stats win over "Spider closed (finished)".
  assert.equal(s.finish_reason, 'closespider_timeout');
});

test('SIGTERM shutdown without a stats dump: shutdown_reason and Spider closed reason', () => {
  const text = [
    '2026-11-23 04:21:07 [scrapy.utils.log] INFO: Scrapy 2.8.0 started (bot: demo)',
    '2026-11-23 04:21:09 [scrapy.crawler] INFO: Received SIGTERM, shutting down gracefully. Send again to force ',
    '2026-11-23 04:21:09 [scrapy.core.engine] INFO: Closing spider (shutdown)',
    '2026-11-23 04:21:10 [scrapy.crawler] INFO: Received SIGTERM twice, forcing unclean shutdown',
    '2026-11-23 04:21:10 [scrapy.core.engine] INFO: Spider closed (shutdown)',
    '',
  ].join('\n');
  const { s } = parseAll(text);
  assert.equal(s.shutdown_reason, 'Received SIGTERM twice');
  assert.equal(s.finish_reason, 'shutdown');
  assert.deepEqual(s.crawler_stats, {});
  assert.equal(s.pages, null);
  assert.equal(s.items, null);
  assert.equal(s.runtime, '0:00:03');
  assert.equal(s._head, s.head); // fewer than 100 lines: _head holds the text
});

test('Scrapy errors: records with tracebacks attached', () => {
  const { p } = parseAll(FIXTURE);
  const errs = p.errors();
  assert.equal(p.errorCount(), 2);
  assert.equal(errs.length, 2);
  assert.deepEqual(errs[0], {
    time: '2026-11-23 04:21:11',
    level: 'ERROR',
    logger: 'scrapy.downloadermiddlewares.retry',
    message: 'Gave up retrying <GET https://quotes.toscrape.com/page/2/> (failed 3 times): 503 Service Unavailable',
    traceback: null,
  });
  const e = errs[1]!;
  assert.equal(e.time, '2026-11-23 04:21:12');
  assert.equal(e.logger, 'scrapy.core.scraper');
  assert.match(e.message, /^Spider error processing <GET https:\/\/quotes\.toscrape\.com\/page\/3\/>/);
  assert.ok(e.traceback);
  assert.ok(e.traceback.startsWith('Traceback (most recent call last):\n'));
  assert.ok(e.traceback.endsWith("TypeError: int() argument must be a string, a bytes-like object or a real number, not 'NoneType'"));
  assert.equal(e.traceback.split('\n').length, 13);
});

test('errors while a traceback is still streaming are visible, then completed', () => {
  const p = parser();
  p.feed('2026-11-23 04:21:12 [twisted] CRITICAL: \nTraceback (most recent call last):\n  File "x.py", line 1, in <module>\n');
  assert.equal(p.errors().length, 1);
  p.feed('ZeroDivisionError: division by zero\n');
  p.end();
  const [e] = p.errors();
  assert.equal(e!.level, 'CRITICAL');
  assert.equal(e!.logger, 'twisted');
  // An empty message is replaced by the exception line.
  assert.equal(e!.message, 'ZeroDivisionError: division by zero');
  const s = p.stats(100, true);
  assert.equal(s.log_categories.critical_logs.count, 1);
});

test('plain Node log: uncaught error with stack, unhandled rejection, Uncaught', () => {
  const log = [
    'starting crawler',
    'fetched 10 urls',
    'Error: this is just printed text without a stack',
    '/srv/app/spider.js:42',
    "    throw new TypeError('bad selector');",
    '    ^',
    '',
    'TypeError: bad selector',
    '    at parsePage (/srv/app/spider.js:42:11)',
    '    at main (/srv/app/spider.js:60:3)',
    '    at process.processTicksAndRejections (node:internal/process/task_queues:95:5) {',
    "  code: 'E_SELECTOR'",
    '}',
    '',
    'Node.js v20.11.1',
    'node:internal/process/promises:288',
    '            triggerUncaughtException(err, true /* fromPromise */);',
    '            ^',
    '',
    '[UnhandledPromiseRejection: This error originated either by throwing inside of an async function without a catch block, or by rejecting a promise which was not handled with .catch(). The promise rejected with the reason "oops".] {',
    "  code: 'ERR_UNHANDLED_REJECTION'",
    '}',
    'Uncaught ReferenceError: foo is not defined',
    'RangeError: Maximum call stack size exceeded',
    '    at recurse (/srv/app/r.js:1:20)',
    'done',
  ].join('\n');
  const before = new Date(FIXED_NOW.getTime());
  const { p } = parseAll(log);
  const errs = p.errors();
  assert.equal(p.errorCount(), 4);
  assert.deepEqual(
    errs.map((e) => e.message),
    [
      'TypeError: bad selector',
      '[UnhandledPromiseRejection: This error originated either by throwing inside of an async function without a catch block, or by rejecting a promise which was not handled with .catch(). The promise rejected with the reason "oops".] {',
      'Uncaught ReferenceError: foo is not defined',
      'RangeError: Maximum call stack size exceeded',
    ],
  );
  for (const e of errs) {
    assert.equal(e.level, 'ERROR');
    assert.equal(e.logger, 'stderr');
    assert.equal(e.time, '2026-11-23 05:00:00', `clock time of ${before.toISOString()}`);
  }
  assert.equal(
    errs[0]!.traceback,
    [
      'TypeError: bad selector',
      '    at parsePage (/srv/app/spider.js:42:11)',
      '    at main (/srv/app/spider.js:60:3)',
      '    at process.processTicksAndRejections (node:internal/process/task_queues:95:5) {',
      "  code: 'E_SELECTOR'",
      '}',
    ].join('\n'),
  );
  assert.match(errs[1]!.traceback!, /ERR_UNHANDLED_REJECTION/);
  assert.equal(errs[3]!.traceback, 'RangeError: Maximum call stack size exceeded\n    at recurse (/srv/app/r.js:1:20)');
  // Non-Scrapy logs have no LogParser times or pages.
  const s = p.stats(log.length, true);
  assert.equal(s.first_log_time, 'N/A');
  assert.equal(s.runtime, 'N/A');
  assert.equal(s.first_log_timestamp, 0);
  assert.equal(s.pages, null);
  assert.deepEqual(s.datas, []);
  assert.equal(s.finish_reason, 'N/A');
  assert.equal(s.log_categories.error_logs.count, 0);
});

test('plain Python log: chained traceback is one record; level lines count', () => {
  const log = [
    'Starting job',
    'Traceback (most recent call last):',
    '  File "/srv/job.py", line 10, in <module>',
    '    main()',
    '  File "/srv/job.py", line 7, in main',
    "    raise KeyError('missing')",
    "KeyError: 'missing'",
    '',
    'During handling of the above exception, another exception occurred:',
    '',
    'Traceback (most recent call last):',
    '  File "/srv/job.py", line 12, in <module>',
    "    raise RuntimeError('wrapped')",
    'RuntimeError: wrapped',
    'cleanup done',
    'ERROR:root:could not connect',
    'Traceback (most recent call last):',
    '  File "/srv/db.py", line 3, in connect',
    '    sock.connect(addr)',
    'ConnectionRefusedError: [Errno 111] Connection refused',
    'time="2026-11-23T04:00:00Z" level=error msg="db down"',
    '[ERROR] boom',
    '[CRITICAL] kaboom',
    '2026-11-23T04:00:01.123Z [error] request failed',
    '{"level":50,"time":1700000000000,"msg":"pino failure"}',
    'this is not an ERROR: it is in the middle',
    'ValueError: printed but not raised',
    'finished',
  ].join('\n');
  const { p } = parseAll(log);
  const errs = p.errors();
  assert.deepEqual(
    errs.map((e) => [e.level, e.message]),
    [
      ['ERROR', 'RuntimeError: wrapped'],
      ['ERROR', 'ERROR:root:could not connect'],
      ['ERROR', 'time="2026-11-23T04:00:00Z" level=error msg="db down"'],
      ['ERROR', '[ERROR] boom'],
      ['CRITICAL', '[CRITICAL] kaboom'],
      ['ERROR', '2026-11-23T04:00:01.123Z [error] request failed'],
      ['ERROR', '{"level":50,"time":1700000000000,"msg":"pino failure"}'],
    ],
  );
  assert.equal(p.errorCount(), 7);
  const chained = errs[0]!.traceback!;
  assert.ok(chained.startsWith('Traceback (most recent call last):\n'));
  assert.match(chained, /\nKeyError: 'missing'\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback/);
  assert.ok(chained.endsWith('RuntimeError: wrapped'));
  assert.ok(!chained.includes('cleanup done'));
  assert.match(errs[1]!.traceback!, /^Traceback \(most recent call last\):\n[\s\S]*ConnectionRefusedError: \[Errno 111\] Connection refused$/);
  assert.equal(errs[2]!.traceback, null);
});

test('a traceback under a Scrapy WARNING is not an error', () => {
  const log = [
    '2026-11-23 04:21:13 [scrapy.core.downloader.tls] WARNING: Remote certificate is not valid',
    'Traceback (most recent call last):',
    '  File "tls.py", line 1, in verify',
    'ssl.SSLError: bad cert',
    '2026-11-23 04:21:14 [scrapy.core.engine] INFO: Closing spider (finished)',
  ].join('\n');
  const { p, s } = parseAll(log);
  assert.equal(p.errorCount(), 0);
  assert.equal(s.log_categories.warning_logs.count, 1);
  assert.match(s.log_categories.warning_logs.details[0]!, /ssl\.SSLError: bad cert$/);
});

test('bounded: errors keep the newest 200, details the newest 10, head/tail capped', () => {
  const p = parser();
  for (let i = 1; i <= 500; i++) {
    p.feed(`2026-11-23 04:21:07 [demo] ERROR: failure ${i}\n`);
    p.feed(`2026-11-23 04:21:07 [demo] WARNING: warn ${i}\n\n`);
  }
  for (let i = 0; i < 20_000; i++) p.feed(`2026-11-23 04:21:08 [demo] DEBUG: line ${i}\n`);
  p.feed('x'.repeat(100_000)); // a huge line without newline
  p.feed('y'.repeat(100_000) + '\nlast line');
  p.end();
  const errs = p.errors();
  assert.equal(p.errorCount(), 500);
  assert.equal(errs.length, 200);
  assert.equal(errs[0]!.message, 'failure 301');
  assert.equal(errs[199]!.message, 'failure 500');

  const s = p.stats(123, true);
  assert.equal(s.log_categories.error_logs.count, 500);
  assert.equal(s.log_categories.error_logs.details.length, 10);
  assert.equal(s.log_categories.error_logs.details[9], '2026-11-23 04:21:07 [demo] ERROR: failure 500');
  assert.equal(s.log_categories.warning_logs.count, 500);
  // The blank line after a warning belongs to its record until the next record starts.
  assert.equal(s.log_categories.warning_logs.details[0], '2026-11-23 04:21:07 [demo] WARNING: warn 491\n');
  assert.equal(s._head, 100);
  assert.equal(s.head.split('\n').filter((l) => l.trim()).length, 100);
  const tail = s.tail.split('\n');
  assert.equal(tail.length, 200);
  assert.equal(tail[199], 'last line');
  assert.equal(tail[198]!.length, 16_384);
});

test('datas is downsampled past 10000 rows but keeps the range and the newest row', () => {
  const p = parser();
  const rows = 25_000;
  const base = new Date(2026, 0, 1, 0, 0, 0).getTime();
  for (let i = 0; i < rows; i++) {
    const t = new Date(base + i * 60_000);
    const ts = `${t.getFullYear()}-${String(t.getMonth() + 1).padStart(2, '0')}-${String(t.getDate()).padStart(2, '0')} ${String(t.getHours()).padStart(2, '0')}:${String(t.getMinutes()).padStart(2, '0')}:00`;
    p.feed(`${ts} [scrapy.extensions.logstats] INFO: Crawled ${i} pages (at 1 pages/min), scraped ${i * 2} items (at 2 items/min)\n`);
  }
  p.end();
  const s = p.stats(0, true);
  assert.ok(s.datas.length <= 10_001 && s.datas.length >= 5_000, `rows: ${s.datas.length}`);
  assert.equal(s.datas[0]![1], 0);
  assert.equal(s.datas[s.datas.length - 1]![1], rows - 1);
  assert.equal(s.pages, rows - 1);
  assert.equal(s.items, (rows - 1) * 2);
  for (let i = 1; i < s.datas.length; i++) assert.ok(s.datas[i]![1] > s.datas[i - 1]![1]);
});

test('stats.json shape', () => {
  const { s } = parseAll(FIXTURE);
  const file = logParserStatsFile(
    [
      { project: 'demo', spider: 'quotes', job: 'job1', stats: s },
      { project: 'demo', spider: 'quotes', job: 'job2', stats: { ...s, finish_reason: 'N/A' } },
    ],
    { now: () => FIXED_NOW, scrapydServer: '10.0.0.5:6800', logsDir: '/var/lib/spiderplane/logs' },
  );
  assert.deepEqual(Object.keys(file), ['status', 'datas', 'settings_py', 'settings', 'last_update_timestamp', 'last_update_time', 'logparser_version']);
  assert.equal(file.status, 'ok');
  assert.equal(file.logparser_version, '0.8.4');
  assert.equal(file.last_update_time, '2026-11-23 05:00:00');
  assert.equal(file.settings.scrapyd_server, '10.0.0.5:6800');
  assert.equal(file.settings.log_categories_limit, 10);
  assert.deepEqual(file.datas['demo']!['quotes']!['job1'], {
    log_path: META.logPath,
    json_path: '/var/lib/spiderplane/logs/demo/quotes/job1.json',
    json_url: 'http://127.0.0.1:6800/logs/demo/quotes/job1.json',
    size: Buffer.byteLength(FIXTURE),
    position: Buffer.byteLength(FIXTURE),
    status: 'ok',
    pages: 4,
    items: 2,
    first_log_time: '2026-11-23 04:21:07',
    latest_log_time: '2026-11-23 04:22:30',
    runtime: '0:01:23',
    shutdown_reason: 'N/A',
    finish_reason: 'finished',
    last_update_time: '2026-11-23 05:00:00',
  });
  assert.equal(file.datas['demo']!['quotes']!['job2']!.finish_reason, 'N/A');
  // JSON round trip keeps everything (no undefined / functions).
  assert.deepEqual(JSON.parse(JSON.stringify(file)), file);
});

test('jobKeyFromLogFile strips one extension like os.path.splitext', () => {
  assert.equal(jobKeyFromLogFile('abc.log'), 'abc');
  assert.equal(jobKeyFromLogFile('2019-01-01T00_00_01.txt'), '2019-01-01T00_00_01');
  assert.equal(jobKeyFromLogFile('a.b.log'), 'a.b');
  assert.equal(jobKeyFromLogFile('noext'), 'noext');
});

test('runtime uses Python timedelta formatting across days', () => {
  const { s } = parseAll(
    '2026-11-20 23:00:00 [x] INFO: a\n2026-11-23 01:02:03 [x] INFO: b\n',
  );
  assert.equal(s.runtime, '2 days, 2:02:03');
  const one = parseAll('2026-11-20 00:00:00 [x] INFO: a\n2026-11-21 00:00:09 [x] INFO: b\n').s;
  assert.equal(one.runtime, '1 day, 0:00:09');
});

test('stats dump: tz-aware datetimes, wrapped strings, quoted keys, booleans', () => {
  const log = [
    '2026-11-23 04:21:07 [scrapy.utils.log] INFO: Scrapy 2.11.2 started (bot: demo)',
    '2026-11-23 04:21:30 [scrapy.statscollectors] INFO: Dumping Scrapy stats:',
    "{'custom/note': 'a long value that pprint wrapped over two lines because it '",
    "                'is wider than eighty columns',",
    ' "robotstxt/exception_count/<class \'twisted.internet.error.DNSLookupError\'>": 1,',
    " 'custom/flag': True,",
    " 'finish_reason': 'finished',",
    " 'start_time': datetime.datetime(2026, 11, 23, 4, 21, 7, 1, tzinfo=datetime.timezone.utc)}",
    '2026-11-23 04:21:30 [scrapy.core.engine] INFO: Spider closed (finished)',
  ].join('\n');
  const { s } = parseAll(log);
  assert.equal(s.finish_reason, 'finished');
  assert.equal(s.latest_matches.scrapy_version, '2.11.2');
  assert.equal(s.crawler_stats['custom/note'], 'a long value that pprint wrapped over two lines because it is wider than eighty columns');
  assert.equal(s.crawler_stats["robotstxt/exception_count/<class 'twisted.internet.error.DNSLookupError'>"], 1);
  assert.equal(s.crawler_stats['custom/flag'], true);
  assert.equal(s.crawler_stats['start_time'], 'datetime.datetime(2026, 11, 23, 4, 21, 7, 1, tzinfo=datetime.timezone.utc)');
  assert.equal(s.pages, null); // no logstats line and no response_received_count
});

test('an unparsable stats dump is kept raw, like LogParser', () => {
  const log = [
    '2026-11-23 04:21:30 [scrapy.statscollectors] INFO: Dumping Scrapy stats:',
    "{'a': 1, 'b' 2}",
    '2026-11-23 04:21:30 [scrapy.core.engine] INFO: Spider closed (finished)',
  ].join('\n');
  const { s } = parseAll(log);
  assert.equal(s.crawler_stats['source'], 'log');
  assert.equal(s.crawler_stats['stats'], "{'a': 1, 'b' 2}");
  assert.equal(typeof s.crawler_stats['json_loads_error'], 'string');
  assert.equal(s.finish_reason, 'finished'); // from "Spider closed (finished)"
});

// LogParser 0.8.4 (ScrapydWeb 1.6) against 0.8.2 (ScrapydWeb 1.4/1.5): the cases of
// my8100/logparser's tests/test_parse.py that changed between the two releases.
const SCRAPE_ITEM_MIXED = [
  "2019-01-01 00:00:00 [scrapy.crawler] INFO: Overridden settings:",
  "{'BOT_NAME': 'demo',",
  " 'TELNETCONSOLE_USERNAME': 'usr123',",
  " 'TELNETCONSOLE_PASSWORD': '456psw'}",
  '2019-01-01 00:00:01 [scrapy.core.scraper] DEBUG: Scraped from <200 http://httpbin.org/get>',
  "{'item': 1}",
  '2019-01-01 00:00:03 [scrapy.core.scraper] DEBUG: Scraped from <200 http://httpbin.org/get>',
  '{',
  "    'item': {",
  "        u'Chinese \\u6c49\\u5b57': 3",
  '    }',
  '}',
  '2019-01-01 00:00:04 [scrapy_fieldstats.fieldstats] INFO: Field stats:',
  "{'item': '100%'}",
  '2019-01-01 00:00:05 [scrapy.crawler] INFO: Received SIGINT, shutting down gracefully. Send again to force ',
  '2019-01-01 00:00:06 [scrapy.statscollectors] INFO: Dumping Scrapy stats:',
  "{'finish_reason': 'shutdown', 'items_per_minute': None}",
  '',
].join('\n');

test('LogParser 0.8.4: item after its Scraped-from line, telnet settings on own lines, SIGINT', () => {
  const p = new ScrapyLogParser(META, { now: () => FIXED_NOW });
  feedOdd(p, SCRAPE_ITEM_MIXED);
  p.end();
  const s = p.stats(100, true);
  assert.equal(s.logparser_version, '0.8.4');
  assert.deepEqual(Object.keys(s.latest_matches), ['scrapy_version', 'telnet_console', 'telnet_username', 'telnet_password', 'resuming_crawl', 'latest_offsite', 'latest_duplicate', 'latest_crawl', 'latest_stat', 'latest_scrape', 'latest_item']);
  assert.equal(s.latest_matches.latest_scrape, '2019-01-01 00:00:03 [scrapy.core.scraper] DEBUG: Scraped from <200 http://httpbin.org/get>');
  assert.equal(s.latest_matches.latest_item, "{\n    'item': {\n        u'Chinese 汉字': 3\n    }\n}");
  assert.equal(s.latest_scrape_timestamp, localTs(2019, 1, 1, 0, 0, 3));
  assert.equal(s.latest_matches.telnet_username, 'usr123');
  assert.equal(s.latest_matches.telnet_password, '456psw');
  assert.equal(s.shutdown_reason, 'Received SIGINT');
  assert.equal(s.crawler_stats['items_per_minute'], null);
});

test('LogParser 0.8.4: an item still being printed counts; a Scraped-from line without an item does not', () => {
  const p = new ScrapyLogParser(META, { now: () => FIXED_NOW });
  p.feed('2019-01-01 00:00:01 [scrapy.core.scraper] DEBUG: Scraped from <200 http://a/>\n{\n  "a": 1,\n');
  assert.equal(p.stats(10, false).latest_matches.latest_item, '{\n  "a": 1,');
  p.feed('}\n2019-01-01 00:00:02 [scrapy.core.scraper] DEBUG: Scraped from <200 http://b/>\n2019-01-01 00:00:03 [x] INFO: done\n');
  const s = p.stats(10, false);
  assert.equal(s.latest_matches.latest_scrape, '2019-01-01 00:00:01 [scrapy.core.scraper] DEBUG: Scraped from <200 http://a/>');
  assert.equal(s.latest_matches.latest_item, '{\n  "a": 1,\n}');
});

test('--logparser-version 0.8.2: the older shape, key order and matching', () => {
  const p = new ScrapyLogParser(META, { now: () => FIXED_NOW, logparserVersion: '0.8.2' });
  feedOdd(p, SCRAPE_ITEM_MIXED);
  p.end();
  const s = p.stats(100, true);
  assert.equal(s.logparser_version, '0.8.2');
  assert.deepEqual(Object.keys(s.latest_matches), ['scrapy_version', 'telnet_console', 'telnet_username', 'telnet_password', 'resuming_crawl', 'latest_offsite', 'latest_duplicate', 'latest_crawl', 'latest_scrape', 'latest_item', 'latest_stat']);
  // 0.8.2: the last line that looks like {...}, wherever it is; credentials only on the Overridden line.
  assert.equal(s.latest_matches.latest_item, "{'finish_reason': 'shutdown', 'items_per_minute': None}");
  assert.equal(s.latest_matches.telnet_username, '');
  assert.equal(s.shutdown_reason, 'N/A');
  assert.equal(logParserStatsFile([], { logparserVersion: '0.8.2' }).logparser_version, '0.8.2');
});

test('an unknown LogParser version is refused', () => {
  assert.throws(() => new ScrapyLogParser(META, { logparserVersion: '0.9.0' as '0.8.4' }), /not one of 0\.8\.2, 0\.8\.4/);
});

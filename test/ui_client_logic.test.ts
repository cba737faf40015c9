// The web client's pure logic, in Node: which log lines are highlighted, how charts word rates and
// empty windows. (The browser tests check the same code in Chromium, end to end.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LogHighlighter } from '../master/web/client/log_highlight.ts';
import { colorFor, emptyReason, formatRate } from '../master/web/client/chart_format.ts';
import { ScrapyLogParser } from '../slave/logs/scrapy_log_parser.ts';

const classes = (lines: string[]) => {
  const h = new LogHighlighter();
  return lines.map((l) => [h.classify(l), l] as const);
};

test('a Scrapy stats dump with log_count/ERROR is not highlighted, nor anything after it', () => {
  const out = classes([
    "2026-11-30 03:00:01 [scrapy.core.engine] INFO: Closing spider (finished)",
    "2026-11-30 03:00:01 [scrapy.statscollectors] INFO: Dumping Scrapy stats:",
    "{'downloader/request_count': 3,",
    " 'log_count/ERROR': 1,",
    " 'log_count/INFO': 10,",
    " 'finish_reason': 'finished'}",
    "2026-11-30 03:00:01 [scrapy.core.engine] INFO: Spider closed (finished)",
  ]);
  assert.deepEqual(out.filter(([c]) => c !== null), [], JSON.stringify(out));
});

test('real ERROR and CRITICAL records, their tracebacks, plain ERROR lines and JS stacks are highlighted', () => {
  const out = classes([
    "2026-11-30 03:00:00 [scrapy.core.scraper] ERROR: Spider error processing <GET data:,x>",
    'Traceback (most recent call last):',
    '  File "/x.py", line 3, in parse',
    "    raise ValueError('boom')",
    'ValueError: boom',
    "2026-11-30 03:00:00 [scrapy.core.engine] INFO: fine again",
    "printed output after an info line",
    "2026-11-30 03:00:00 [root] CRITICAL: out of disk",
    "2026-11-30 03:00:00 [root] WARNING: slow",
    "ERROR something went wrong",
    "[ERROR] boom",
    "a message that mentions ERROR in passing",
    "TypeError: x is not a function",
    "    at main (/srv/spider.js:3:9)",
    "done",
  ]);
  assert.deepEqual(out.map(([c]) => c), [
    'l-error', 'l-trace', 'l-trace', 'l-trace', 'l-trace', null, null, 'l-critical', 'l-warning', 'l-error', 'l-error', null, 'l-trace', 'l-trace', null,
  ]);
});

test('a standalone Python traceback ends at its exception line', () => {
  const out = classes(['Traceback (most recent call last):', '  File "a.py", line 1, in <module>', 'KeyError: 1', 'next line']);
  assert.deepEqual(out.map(([c]) => c), ['l-trace', 'l-trace', 'l-trace', null]);
});

test('chart rates are scaled to B/s, KB/s, MB/s; failures are red, not green', () => {
  assert.equal(formatRate(512), '512 B/s');
  assert.equal(formatRate(12_500), '12.5 KB/s');
  assert.equal(formatRate(300_000), '300 KB/s');
  assert.equal(formatRate(3_200_000), '3.2 MB/s');
  assert.equal(formatRate(null), '—');
  assert.equal(colorFor('failed', 1), '#dc2626');
  assert.equal(colorFor('finished', 0), '#16a34a');
  assert.notEqual(colorFor('failed', 1), colorFor('finished', 0));
});

test('an empty chart says why', () => {
  assert.match(emptyReason('node', { from: 0, to: 1, step_seconds: 0, sample_every_seconds: 5 }, false), /No samples yet — the node reports every 5 s/);
  assert.match(emptyReason('cluster', { from: 0, to: 1, step_seconds: 60, sample_every_seconds: 5 }, false), /one point per minute/);
  assert.match(emptyReason('node', { from: 0, to: 1, step_seconds: 0, sample_every_seconds: 5 }, true), /plain Scrapyd/);
});

test('the slave counts a plain "ERROR something" line as an error', () => {
  const p = new ScrapyLogParser({ project: 'p', spider: 's', job: 'j', logPath: '/tmp/j.log' }, { now: () => new Date(2026, 10, 30) });
  p.feed('starting\nERROR something broke\nERRORS are not counted here\nfine\n');
  p.end();
  assert.deepEqual(p.errors().map((e) => e.message), ['ERROR something broke']);
  assert.equal(p.errorCount(), 1);
});

test('alert titles count in words: "logged 1 error", "logged 2 errors"', async () => {
  const { evaluateRun } = await import('../master/alerts/rule_engine.ts');
  const rule = { id: 1, name: 'r', kind: 'job_errors' as const, threshold: 0, duration_seconds: 0, scope: 'all' as const, scope_node: null, scope_project: null, scope_spider: null, recipients: [], enabled: true, created_at: 0, updated_at: 0 };
  const run = { job: 'j1', project: 'p', spider: 's', node: 'n1', outcome: 'succeeded', exit_code: 0, items_count: 3, error_count: 1, note: null, ended_at: 5 };
  const one = evaluateRun([rule], run, new Map()).fire[0]!;
  assert.equal(one.title, 'job p/s logged 1 error');
  assert.match(one.detail ?? '', /^1 ERROR\/CRITICAL line \(/);
  assert.equal(evaluateRun([rule], { ...run, error_count: 2 }, new Map()).fire[0]!.title, 'job p/s logged 2 errors');
});

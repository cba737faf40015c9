// master/runs/node_times.ts: which start and end a run gets from what its node reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeJobTimes, parseScrapydLocalTime } from '../master/runs/node_times.ts';
import { formatScrapydTime } from '../common/scrapyd_time.ts';

const now = Date.UTC(2026, 10, 30, 12, 0, 0);
const w = { createdAt: now - 60_000, now };
/** Within a millisecond (Scrapyd's strings carry microseconds of a float epoch). */
const near = (actual: number | null, expected: number, what: string) => assert.ok(actual !== null && Math.abs(actual - expected) <= 1, `${what}: ${actual} vs ${expected}`);

test('exact epoch timestamps win, start rounded down and end up (never shorter than the node says)', () => {
  const t = nodeJobTimes({ start_timestamp: (now - 6160.4) / 1000, end_timestamp: (now - 0.3) / 1000, start_time: 'garbage', end_time: 'garbage' }, w);
  assert.deepEqual(t, { started: now - 6161, ended: now });
  assert.ok(t.ended! - t.started! >= 6160.1);
});

test('Scrapyd\'s naive local-time strings are used when they fall where the master saw the run', () => {
  const start = (now - 6160) / 1000;
  const end = (now - 400) / 1000;
  near(parseScrapydLocalTime(formatScrapydTime(start)), now - 6160, 'parsed back');
  const t = nodeJobTimes({ start_time: formatScrapydTime(start), end_time: formatScrapydTime(end) }, w);
  near(t.started, now - 6160, 'started');
  near(t.ended, now - 400, 'ended');
  // A 0.4 s crawl keeps its 0.4 s.
  const quick = nodeJobTimes({ start_time: formatScrapydTime((now - 1400) / 1000), end_time: formatScrapydTime((now - 1000) / 1000) }, w);
  near(quick.ended! - quick.started!, 400, 'duration');
});

test('a node in another timezone: its strings are hours off, so only their difference is kept, ended now', () => {
  const offset = 3 * 3600_000;
  const t = nodeJobTimes({ start_time: formatScrapydTime((now + offset - 6160) / 1000), end_time: formatScrapydTime((now + offset - 1000) / 1000) }, w);
  assert.equal(t.ended, now);
  near(t.started, now - 5160, 'started');
  // A running job (no end yet) in another timezone: no start can be trusted.
  assert.deepEqual(nodeJobTimes({ start_time: formatScrapydTime((now + offset) / 1000) }, w), { started: null, ended: null });
});

test('nothing usable gives nulls; bad strings are ignored', () => {
  assert.deepEqual(nodeJobTimes({}, w), { started: null, ended: null });
  assert.deepEqual(nodeJobTimes({ start_time: 'yesterday', end_time: null, start_timestamp: null }, w), { started: null, ended: null });
});

// The pure parts of limits and retries: the breach decision, the process-tree RSS sum, the
// schedule.json limit parameters, the backoff, the retry decision and the alert wording.
// Run: npx tsx --test test/run_limits_unit.test.ts
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { breach, describeHit, MIB } from '../slave/runner/limits.ts';
import { childrenOf, parseStat, treeRss, type ProcInfo } from '../slave/runner/process_tree.ts';
import { effectiveLimits } from '../slave/jobs/job_limits.ts';
import { decodeSchedule, encodeSchedule, type ParamSource } from '../common/http/scrapyd_params.ts';
import { decideRetry, retryDelayMs, retryPhrase, JITTER } from '../master/runs/retry_backoff.ts';
import { evaluateRun, type AlertRule, type RunFacts } from '../master/alerts/rule_engine.ts';

const NONE = { max_runtime: null, max_memory: null, nice: null };

describe('breach decision', () => {
  test('runtime: at or past the limit is a timeout, with the figure reached', () => {
    assert.equal(breach({ ...NONE, max_runtime: 2 }, { elapsedSeconds: 1.99, rssBytes: null }), null);
    assert.deepEqual(breach({ ...NONE, max_runtime: 2 }, { elapsedSeconds: 2.04, rssBytes: null }), { kind: 'timeout', limit: 2, reached: 2, unit: 's' });
  });
  test('memory: over the limit in MiB is a memory breach; not sampled is no breach', () => {
    assert.equal(breach({ ...NONE, max_memory: 64 }, { elapsedSeconds: 100, rssBytes: 64 * MIB }), null);
    assert.deepEqual(breach({ ...NONE, max_memory: 64 }, { elapsedSeconds: 1, rssBytes: 100.04 * MIB }), { kind: 'memory', limit: 64, reached: 100, unit: 'MiB' });
    assert.equal(breach({ ...NONE, max_memory: 64 }, { elapsedSeconds: 1, rssBytes: null }), null);
  });
  test('no limits, or 0, never breach; runtime is reported first when both break', () => {
    assert.equal(breach(NONE, { elapsedSeconds: 1e9, rssBytes: 1e15 }), null);
    assert.equal(breach({ max_runtime: 0, max_memory: 0, nice: null }, { elapsedSeconds: 1e9, rssBytes: 1e15 }), null);
    assert.equal(breach({ max_runtime: 1, max_memory: 1, nice: null }, { elapsedSeconds: 5, rssBytes: 5 * MIB })?.kind, 'timeout');
  });
  test('the sentence names the limit and the figure', () => {
    assert.match(describeHit({ kind: 'memory', limit: 64, reached: 201.5, unit: 'MiB' }), /used 201\.5 MiB, over its max_memory of 64 MiB/);
    assert.match(describeHit({ kind: 'timeout', limit: 2, reached: 2.1, unit: 's' }), /ran 2\.1 s, over its max_runtime of 2 s/);
  });
  test('effective limits: the job\'s own, else the slave default; 0 means none', () => {
    const defaults = { maxRuntime: 30, maxMemory: 0, nice: 3 };
    assert.deepEqual(effectiveLimits({ maxRuntime: null, maxMemory: null, nice: null }, defaults), { max_runtime: 30, max_memory: null, nice: 3 });
    assert.deepEqual(effectiveLimits({ maxRuntime: 0, maxMemory: 64, nice: 0 }, defaults), { max_runtime: null, max_memory: 64, nice: null });
  });
});

describe('process tree RSS', () => {
  const stat = (pid: number, comm: string, ppid: number, pgrp: number, rssPages: number) =>
    `${pid} (${comm}) S ${ppid} ${pgrp} ${pgrp} 0 -1 4194560 1 0 0 0 1 1 0 0 20 0 1 0 100 1000000 ${rssPages} 18446744073709551615`;
  test('parses /proc/PID/stat, also with spaces and parentheses in the command name', () => {
    assert.deepEqual(parseStat(stat(10, 'python3 (x) y', 1, 10, 100), 4096), { ppid: 1, pgrp: 10, rss: 409600 });
    assert.equal(parseStat(stat(10, 'z', 1, 10, 100).replace(') S ', ') Z '), 4096), null, 'a zombie holds no memory');
  });
  test('sums the group and descendants that left it, each once; ignores others', () => {
    const t = new Map<number, ProcInfo>([
      [100, { ppid: 1, pgrp: 100, rss: 1 * MIB }], // the spider (group leader)
      [101, { ppid: 100, pgrp: 100, rss: 10 * MIB }], // its child
      [102, { ppid: 101, pgrp: 102, rss: 100 * MIB }], // a grandchild that called setsid
      [103, { ppid: 1, pgrp: 100, rss: 1000 * MIB }], // re-parented to init, still in the group
      [200, { ppid: 1, pgrp: 200, rss: 5000 * MIB }], // unrelated
    ]);
    assert.equal(treeRss(t, 100, childrenOf(t)), 1111 * MIB);
    assert.equal(treeRss(t, 999), 0, 'a job whose processes are gone uses nothing');
  });
});

describe('schedule.json limit parameters', () => {
  const src = (pairs: Array<[string, string]>): ParamSource => ({
    get: (n) => pairs.find(([k]) => k === n)?.[1],
    getAll: (n) => pairs.filter(([k]) => k === n).map(([, v]) => v),
    names: () => [...new Set(pairs.map(([k]) => k))],
  });
  test('reserved, decoded, never spider arguments; absent stays absent', () => {
    const d = decodeSchedule(src([['project', 'p'], ['spider', 's'], ['_max_runtime', '2.5'], ['_max_memory', '64'], ['_nice', '7'], ['a', 'b']]));
    assert.equal(d.maxRuntime, 2.5);
    assert.equal(d.maxMemory, 64);
    assert.equal(d.nice, 7);
    assert.deepEqual({ ...d.args }, { a: 'b' }); // args has no prototype (a name like __proto__ is just a name)
    const plain = decodeSchedule(src([['project', 'p'], ['spider', 's']]));
    assert.equal('maxRuntime' in plain, false);
    assert.deepEqual(JSON.parse(JSON.stringify(decodeSchedule(src(encodeSchedule(d))))), JSON.parse(JSON.stringify(d)), 'encode is decode read backwards');
  });
  test('bad values are refused with the parameter named', () => {
    for (const [k, v] of [['_max_runtime', 'x'], ['_max_runtime', '-1'], ['_max_memory', ''], ['_nice', '2.5'], ['_nice', '20']]) {
      assert.throws(() => decodeSchedule(src([['project', 'p'], ['spider', 's'], [k!, v!]])), new RegExp(`${k} is invalid`));
    }
    assert.throws(() => encodeSchedule({ project: 'p', spider: 's', version: null, jobid: null, priority: 0, settings: {}, args: { _max_memory: '1' } }), /reserved/);
  });
});

describe('retry backoff and decision', () => {
  test('the delay doubles per retry, within the jitter band, capped at a day', () => {
    assert.equal(retryDelayMs(60, 1, () => 0.5), 60_000);
    assert.equal(retryDelayMs(60, 2, () => 0.5), 120_000);
    assert.equal(retryDelayMs(60, 3, () => 0.5), 240_000);
    assert.equal(retryDelayMs(60, 1, () => 0), 60_000 * (1 - JITTER));
    assert.ok(retryDelayMs(60, 1, () => 0.999999) <= 60_000 * (1 + JITTER));
    assert.equal(retryDelayMs(3600, 30, () => 0.5), 24 * 3600_000);
    assert.equal(retryDelayMs(0, 3, () => 0.7), 0);
  });
  const base = { state: 'finished', outcome: 'failed', cancel_requested: 0, retries: 3, retry_number: 0 };
  test('failed, timeout and memory are retried while retries are left; then it gives up', () => {
    for (const outcome of ['failed', 'timeout', 'memory']) assert.deepEqual(decideRetry({ ...base, outcome }), { kind: 'retry', number: 1, of: 3 });
    assert.deepEqual(decideRetry({ ...base, retry_number: 2 }), { kind: 'retry', number: 3, of: 3 });
    assert.deepEqual(decideRetry({ ...base, retry_number: 3 }), { kind: 'gave_up', of: 3 });
  });
  test('never a cancelled, lost, succeeded or undispatched run, nor one without retries', () => {
    assert.equal(decideRetry({ ...base, outcome: 'cancelled' }).kind, 'none');
    assert.equal(decideRetry({ ...base, cancel_requested: 1 }).kind, 'none', 'a cancel that lost the race to a crash is still a cancel');
    assert.equal(decideRetry({ ...base, outcome: 'lost', state: 'lost' }).kind, 'none');
    assert.equal(decideRetry({ ...base, outcome: 'succeeded' }).kind, 'none');
    assert.equal(decideRetry({ ...base, state: 'failed' }).kind, 'none');
    assert.equal(decideRetry({ ...base, retries: 0 }).kind, 'none');
  });
  test('the alert wording', () => {
    assert.equal(retryPhrase({ ...base, retry_at: 61_000, ended_at: 1_000 }), 'retry 1 of 3 in 60 s');
    assert.equal(retryPhrase({ ...base, retry_number: 3, retry_at: null, ended_at: 1 }), 'gave up after 3 retries');
    assert.equal(retryPhrase({ ...base, retries: 1, retry_number: 1, retry_at: null, ended_at: 1 }), 'gave up after 1 retry');
    assert.equal(retryPhrase({ ...base, outcome: 'cancelled', retry_at: null, ended_at: 1 }), null);
  });
});

describe('job_failed alerts with limits and retries', () => {
  const rule: AlertRule = { id: 1, name: 'Job failed', kind: 'job_failed', threshold: null, duration_seconds: 0, scope: 'all', scope_node: null, scope_project: null, scope_spider: null, recipients: [], enabled: true, created_at: 0, updated_at: 0 };
  const run = (over: Partial<RunFacts>): RunFacts => ({ job: 'j1', project: 'p', spider: 's', node: 'n1', outcome: 'failed', exit_code: 1, items_count: 0, error_count: 0, note: null, ended_at: 1, ...over });
  test('timeout and memory are failures', () => {
    assert.match(evaluateRun([rule], run({ outcome: 'timeout', exit_code: null }), new Map()).fire[0]!.title, /job p\/s timed out/);
    assert.match(evaluateRun([rule], run({ outcome: 'memory' }), new Map()).fire[0]!.title, /went over its memory limit/);
  });
  test('a pending retry fires under its chain, once; giving up fires for the spider and quietly closes the chain', () => {
    const pending = evaluateRun([rule], run({ retry: { phrase: 'retry 1 of 2 in 60 s', pending: true, chain: 'j1' } }), new Map());
    assert.equal(pending.fire[0]!.subjectKey, 'spider:p/s#retry:j1');
    assert.match(pending.fire[0]!.title, /failed, retry 1 of 2 in 60 s/);
    const open = new Map([[1, new Set(['spider:p/s#retry:j1'])]]);
    assert.equal(evaluateRun([rule], run({ job: 'j2', retry: { phrase: 'retry 2 of 2 in 120 s', pending: true, chain: 'j1' } }), open).fire.length, 0);
    const gaveUp = evaluateRun([rule], run({ job: 'j3', retry: { phrase: 'gave up after 2 retries', pending: false, chain: 'j1' } }), open);
    assert.equal(gaveUp.fire[0]!.subjectKey, 'spider:p/s');
    assert.match(gaveUp.fire[0]!.title, /gave up after 2 retries/);
    assert.deepEqual(gaveUp.resolve.map((r) => [r.subjectKey, r.silent]), [['spider:p/s#retry:j1', true]]);
  });
  test('a retry that succeeds resolves its chain with a notice', () => {
    const open = new Map([[1, new Set(['spider:p/s#retry:j1'])]]);
    const ok = evaluateRun([rule], run({ job: 'j2', outcome: 'succeeded', exit_code: 0 }), open);
    assert.deepEqual(ok.resolve.map((r) => [r.subjectKey, r.silent ?? false]), [['spider:p/s#retry:j1', false]]);
  });
});

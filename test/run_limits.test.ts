// Limits on a run, on a real slave with real processes: a spider that hangs is stopped at its
// max_runtime (TERM, then KILL after the cancel grace) with outcome 'timeout'; one whose process
// tree grows past max_memory is stopped with outcome 'memory' within 2 s of the breach; the nice
// level is applied; the limit parameters never reach the spider; bad values are refused.
// Run: npx tsx --test --test-concurrency=1 test/run_limits.test.ts
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startSlave, tempDir, uploadEgg, postForm, type SlaveHandle } from './helpers/slave_process.ts';
import { schedule, cancel, job, waitRunning, waitFinished, waitForLog, fetchText, parseScrapydTime, killGroup } from './helpers/runner_checks.ts';
import { buildLimitPackage } from './helpers/limit_spiders.ts';

const work = tempDir('spiderplane-limits-test-');
let slave: SlaveHandle;
const pids = new Set<number>();

before(async () => {
  // Default runtime limit 30 s from the flag; the tests below override it per job.
  slave = await startSlave({ args: ['--cancel-grace', '1', '--max-runtime', '30', '--nice', '3'] });
  const r = await uploadEgg(slave.url, 'lim', '1', await buildLimitPackage(work));
  assert.equal(r.status, 'ok', JSON.stringify(r));
});

after(async () => {
  for (const pid of pids) killGroup(pid);
  await slave?.stop();
});

function niceOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]); // field 19
}

describe('limits on a run', () => {
  test('a spider that hangs (and ignores SIGTERM) is killed at its max_runtime: outcome timeout', async () => {
    const id = await schedule(slave.url, [['project', 'lim'], ['spider', 'hang'], ['_max_runtime', '2']]);
    const r = await waitRunning(slave.url, id);
    pids.add(r.pid!);
    assert.deepEqual(r.args, {}, 'the limit parameters are not spider arguments');
    assert.equal(r.limits?.max_runtime, 2);
    const done = await waitFinished(slave.url, id, { timeoutMs: 60_000 });
    assert.equal(done.outcome, 'timeout', JSON.stringify(done));
    assert.equal(done.signal, 'SIGKILL', 'it ignored TERM, so the cancel ladder killed it');
    assert.equal(done.limit_hit?.kind, 'timeout');
    assert.equal(done.limit_hit?.limit, 2);
    assert.ok(done.limit_hit!.reached >= 2, JSON.stringify(done.limit_hit));
    assert.match(done.note ?? '', /max_runtime of 2 s/);
    const ran = parseScrapydTime(done.end_time!) - parseScrapydTime(done.start_time!);
    assert.ok(ran >= 2 && ran < 15, `ran ${ran} s`);
    const log = await waitForLog(slave.url, 'lim', 'hang', id, /over its max_runtime of 2 s/);
    assert.match(log, /hang got SIGTERM/);
  });

  test('a spider whose process tree grows past max_memory is killed with outcome memory, within 2 s', async () => {
    const id = await schedule(slave.url, [['project', 'lim'], ['spider', 'hog'], ['_max_memory', '64']]);
    const r = await waitRunning(slave.url, id);
    pids.add(r.pid!);
    const done = await waitFinished(slave.url, id, { timeoutMs: 60_000 });
    assert.equal(done.outcome, 'memory', JSON.stringify(done));
    assert.equal(done.limit_hit?.kind, 'memory');
    assert.equal(done.limit_hit?.limit, 64);
    assert.ok(done.limit_hit!.reached > 64, JSON.stringify(done.limit_hit));
    assert.match(done.note ?? '', /over its max_memory of 64 MiB/);
    const log = (await fetchText(slave.url, `/logs/lim/hog/${id}.log`)).text;
    const crossed = Number(/hog crossed 64 MiB at ([\d.]+)/.exec(log)?.[1]);
    assert.ok(crossed > 0, `the hog never said when it crossed 64 MiB:\n${log}`);
    const stoppedAt = /(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \[spiderplane\] ERROR: stopped by the slave/.exec(log);
    assert.ok(stoppedAt, log);
    // Acted on within 2 s of the breach (the log line has whole seconds: allow one more).
    const acted = Date.parse(stoppedAt[1]!.replace(' ', 'T') + 'Z') / 1000;
    assert.ok(acted - crossed <= 3, `stopped ${acted - crossed} s after crossing`);
    assert.ok(parseScrapydTime(done.end_time!) - crossed <= 3.5, 'it ended promptly after the breach');
  });

  test('the slave default applies when the job sets no limit; 0 switches it off; nice from the flag or _nice', async () => {
    const byDefault = await schedule(slave.url, [['project', 'lim'], ['spider', 'idle']]);
    const off = await schedule(slave.url, [['project', 'lim'], ['spider', 'idle'], ['_max_runtime', '0'], ['_nice', '7']]);
    const a = await waitRunning(slave.url, byDefault);
    const b = await waitRunning(slave.url, off);
    pids.add(a.pid!);
    pids.add(b.pid!);
    assert.equal(a.limits?.max_runtime, 30);
    assert.equal(b.limits?.max_runtime, null);
    assert.equal(niceOf(a.pid!), 3);
    assert.equal(niceOf(b.pid!), 7);
    await cancel(slave.url, 'lim', byDefault);
    await cancel(slave.url, 'lim', off);
    const ca = await waitFinished(slave.url, byDefault);
    assert.equal(ca.outcome, 'cancelled');
    assert.equal(ca.limit_hit, null);
  });

  test('bad limit values are refused with a clear message', async () => {
    for (const [name, value, re] of [
      ['_max_runtime', 'abc', /_max_runtime is invalid/],
      ['_max_memory', '-5', /_max_memory is invalid/],
      ['_nice', '25', /_nice is invalid: expected an integer from 0 to 19/],
    ] as const) {
      const r = await postForm(slave.url, '/schedule.json', [['project', 'lim'], ['spider', 'idle'], [name, value]]);
      assert.equal(r.status, 'error', JSON.stringify(r));
      assert.match(String(r.message), re);
    }
    assert.equal((await job(slave.url, 'nothing-here')), undefined);
  });
});

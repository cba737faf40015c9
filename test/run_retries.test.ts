// Retries on failure and limits through the master, with a real master, two real slaves, real
// spider processes and a real SMTP receiver: a failing spider with retries: 2 runs three times,
// on alternating nodes, and the alerts say "retry 1 of 2 in … s" and "gave up after 2 retries";
// a run stopped at its max_runtime counts as a failure and is retried on the other node; a
// cancelled run is never retried; a schedule carries the limits; a retry due while the master was
// down (claimed but never dispatched, even) runs once after it restarts.
// Run: npx tsx --test --test-concurrency=1 test/run_retries.test.ts
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ADMIN, startMaster, type MasterHandle, openDatabaseOf } from './helpers/master_process.ts';
import { ROOT, tempDir, waitFor, type SlaveHandle } from './helpers/slave_process.ts';
import { FAST_MASTER_ARGS, joinSlave, uploadVersion, waitRunState, type RunView } from './helpers/master_slave_pair.ts';
import { startSmtp, type SmtpHandle } from './helpers/smtp.ts';
import { buildLimitPackage } from './helpers/limit_spiders.ts';
import { loginByHttp } from './helpers/browser.ts';
import { programArgs } from './helpers/daemon_bundle.ts';

const OPS = 'ops@example.com';
const work = tempDir('spiderplane-retries-test-');
const dataDir = tempDir('spiderplane-retries-master-');
let smtp: SmtpHandle;
let master: MasterHandle;
const slaves: SlaveHandle[] = [];
/** Chains the UI test looks at, from the tests before it. */
const seen: { failChain?: Run[]; timeoutChain?: Run[] } = {};

const masterArgs = () => [...FAST_MASTER_ARGS, '--smtp-host', '127.0.0.1', '--smtp-port', String(smtp.port), '--smtp-secure', 'none',
  '--alert-to', OPS, '--alert-group-seconds', '0.2', '--alert-group-wait', '0.1'];

type Run = RunView & { retry_of_job: string | null; attempt: number; retry_number: number; retries: number; retry_at: number | null;
  ended_at: number | null; note: string | null; max_runtime: number | null; max_memory: number | null; limit_hit: { kind: string; limit: number; reached: number } | null };

before(async () => {
  smtp = await startSmtp();
  master = await startMaster({ dataDir, args: masterArgs() });
  slaves.push(await joinSlave(master, 'n1', ['--cancel-grace', '1']));
  slaves.push(await joinSlave(master, 'n2', ['--cancel-grace', '1']));
  const r = await uploadVersion(master, 'lim', '1', await buildLimitPackage(work));
  assert.equal(r.status, 201, JSON.stringify(r.body));
});

after(async () => {
  await master?.stop().catch(() => undefined);
  for (const s of slaves) await s.stop().catch(() => undefined);
  await smtp?.stop();
});

async function runs(spider: string): Promise<Run[]> {
  const r = await master.api<{ runs: Run[] }>('GET', `/api/runs?project=lim&spider=${spider}&limit=100`);
  return r.body.runs;
}

/** The chain that starts at `job`: the run, its retry, the retry's retry… */
async function chain(spider: string, job: string): Promise<Run[]> {
  const all = await runs(spider);
  const out: Run[] = [];
  let cur = all.find((r) => r.job === job);
  while (cur) {
    out.push(cur);
    const j: string = cur.job;
    cur = all.find((r) => r.retry_of_job === j);
  }
  return out;
}

const ended = (r: Run) => ['finished', 'failed', 'lost'].includes(r.state);

async function start(body: Record<string, unknown>): Promise<Run> {
  const r = await master.api<{ runs: Run[] }>('POST', '/api/runs', { project: 'lim', ...body });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.runs[0]!;
}

describe('retries on failure', () => {
  test('a failing spider with retries: 2 runs three times on alternating nodes, and the alert says it gave up', async () => {
    const first = await start({ spider: 'fail', retries: 2, retry_delay: 0.3 });
    const done = await waitFor('three failed runs', async () => {
      const c = await chain('fail', first.job);
      return c.length === 3 && c.every(ended) ? c : undefined;
    }, 60_000, 200);
    seen.failChain = done;
    assert.deepEqual(done.map((r) => r.outcome), ['failed', 'failed', 'failed']);
    assert.deepEqual(done.map((r) => r.retry_number), [0, 1, 2]);
    assert.deepEqual(done.map((r) => r.attempt), [1, 2, 3]);
    assert.deepEqual(done.map((r) => r.retries), [2, 2, 2]);
    assert.equal(done[1]!.retry_of_job, done[0]!.job);
    assert.equal(done[2]!.retry_of_job, done[1]!.job);
    assert.notEqual(done[0]!.node, done[1]!.node, 'the first retry ran on the other node');
    assert.notEqual(done[1]!.node, done[2]!.node, 'the second retry ran on the other node');
    assert.equal(done[2]!.retry_at, null, 'no retry left after the last');
    assert.ok(done[0]!.retry_at !== null && done[0]!.retry_at >= done[0]!.ended_at!, 'the retry was due after the failure');

    const mails = await waitFor('the gave-up mail', () => {
      const all = smtp.mails.filter((m) => m.text.includes('lim/fail'));
      return all.some((m) => /gave up after 2 retries/.test(m.text)) && all.some((m) => /retry 1 of 2 in \d+ s/.test(m.text)) ? all : undefined;
    }, 30_000, 100);
    assert.ok(mails.some((m) => /retry 1 of 2 in \d+ s/.test(m.subject + m.text)), mails.map((m) => m.subject).join(' | '));
    // The retry in between (2 of 2 pending) does not mail again: one mail per chain while it retries.
    assert.equal(smtp.mails.filter((m) => /retry 2 of 2 in/.test(m.text)).length, 0);
    const firings = await master.api<{ firings: Array<{ title: string; state: string }> }>('GET', '/api/alerts/firings?limit=50');
    assert.ok(firings.body.firings.some((f) => /lim\/fail failed, gave up after 2 retries/.test(f.title) && f.state === 'firing'), JSON.stringify(firings.body));
  });

  test('a run stopped at its max_runtime is a failure: outcome timeout on the master, retried on the other node', async () => {
    const first = await start({ spider: 'hang', max_runtime: 2, retries: 1, retry_delay: 0.2 });
    assert.equal(first.max_runtime, 2);
    const done = await waitFor('two timed-out runs', async () => {
      const c = await chain('hang', first.job);
      return c.length === 2 && c.every(ended) ? c : undefined;
    }, 60_000, 200);
    seen.timeoutChain = done;
    for (const r of done) {
      assert.equal(r.outcome, 'timeout', JSON.stringify(r));
      assert.equal(r.limit_hit?.kind, 'timeout');
      assert.equal(r.limit_hit?.limit, 2);
      assert.match(r.note ?? '', /max_runtime of 2 s/);
      assert.equal(r.max_runtime, 2, 'the retry keeps the limit');
    }
    assert.notEqual(done[0]!.node, done[1]!.node);
    await waitFor('the timeout alert', () => smtp.mails.find((m) => /lim\/hang timed out, gave up after 1 retry/.test(m.text)), 30_000, 100);
  });

  test('a run over its max_memory ends with outcome memory on the master, with the figure reached', async () => {
    const first = await start({ spider: 'hog', max_memory: 64 });
    const r = await waitRunState(master, first.job, (x) => x.state === 'finished', 'finished', 60_000) as Run;
    assert.equal(r.outcome, 'memory', JSON.stringify(r));
    assert.equal(r.limit_hit?.limit, 64);
    assert.ok(r.limit_hit!.reached > 64);
    assert.equal(r.max_memory, 64);
  });

  test('a cancelled run is never retried', async () => {
    const victim = await start({ spider: 'idle', retries: 2, retry_delay: 0.2 });
    await waitRunState(master, victim.job, (x) => x.state === 'running', 'running', 30_000);
    assert.equal((await master.api('POST', `/api/runs/${victim.job}/cancel`)).status, 200);
    const cancelled = await waitRunState(master, victim.job, (x) => x.state === 'finished', 'finished', 30_000) as Run;
    assert.equal(cancelled.outcome, 'cancelled');
    // A barrier: a failing run with a shorter delay, started after the cancel, gets its retry;
    // by then the cancelled one would have had its retry too.
    const probe = await start({ spider: 'fail', retries: 1, retry_delay: 0.2 });
    await waitFor('the probe to be retried', async () => ((await chain('fail', probe.job)).length === 2 ? true : undefined), 30_000, 200);
    const after = await chain('idle', victim.job);
    assert.equal(after.length, 1, 'no retry of the cancelled run');
    assert.equal(after[0]!.retry_at, null);
  });

  test('cancelling a failed run whose retry is waiting drops the retry', async () => {
    const failed = await start({ spider: 'fail', retries: 2, retry_delay: 20 });
    await waitFor('the retry to be planned', async () => ((await chain('fail', failed.job))[0]!.retry_at !== null ? true : undefined), 30_000, 100);
    assert.equal((await master.api('POST', `/api/runs/${failed.job}/cancel`)).status, 200);
    const [r] = await chain('fail', failed.job);
    assert.equal(r!.retry_at, null);
    assert.match(r!.note ?? '', /retry cancelled/);
    const page = await master.api<{ runs: Run[] }>('GET', '/api/runs?project=lim&spider=fail&limit=100');
    assert.equal(page.body.runs.filter((x) => x.retry_of_job === failed.job).length, 0);
  });

  test('a schedule carries limits and retries to its runs', async () => {
    const created = await master.api<{ schedule: Record<string, unknown> & { id: number } }>('POST', '/api/schedules', {
      project: 'lim', spider: 'hang', cron: '0 0 1 1 *', max_runtime: 2, max_memory: 512, nice: 5, retries: 0, retry_delay: 10,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const s = created.body.schedule;
    assert.deepEqual([s.max_runtime, s.max_memory, s.nice, s.retries, s.retry_delay], [2, 512, 5, 0, 10]);
    const bad = await master.api<{ error: string }>('POST', '/api/schedules', { project: 'lim', spider: 'hang', cron: '0 0 1 1 *', nice: 30 });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.body), /'nice' must be at most 19/);
    const ran = await master.api<{ runs: Run[] }>('POST', `/api/schedules/${s.id}/run`);
    assert.equal(ran.status, 200, JSON.stringify(ran.body));
    const r = await waitRunState(master, ran.body.runs[0]!.job, (x) => x.state === 'finished', 'finished', 60_000) as Run;
    assert.equal(r.outcome, 'timeout');
    assert.equal(r.max_memory, 512);
  });

  test('the CLI passes --max-runtime/--max-memory/--nice/--retries/--retry-delay on run and schedule', async () => {
    const cli = async (...args: string[]) => {
      const { stdout } = await promisify(execFile)(process.execPath, [...await programArgs('cli/main.ts'), ...args,
        '--url', master.url, '--user', ADMIN.user, '--password', ADMIN.password, '--json'], { cwd: ROOT });
      return JSON.parse(stdout) as Record<string, unknown>;
    };
    const ran = await cli('run', 'lim', 'hang', '--max-runtime', '2', '--nice', '4') as { runs: Run[] };
    assert.equal(ran.runs[0]!.max_runtime, 2);
    const r = await waitRunState(master, ran.runs[0]!.job, (x) => x.state === 'finished', 'finished', 60_000) as Run;
    assert.equal(r.outcome, 'timeout');
    const sched = await cli('schedule', 'lim', 'idle', '--cron', '0 0 1 1 *', '--max-memory', '128', '--retries', '3', '--retry-delay', '30') as { schedule: Record<string, unknown> };
    assert.deepEqual([sched.schedule.max_memory, sched.schedule.retries, sched.schedule.retry_delay, sched.schedule.max_runtime], [128, 3, 30, null]);
    await assert.rejects(cli('run', 'lim', 'hang', '--retries', 'many'), /--retries must be a number/);
  });

  test('web UI: "retry N of M" linked to the first run, the limit in the job page and its log view, the fields in Run now and the schedule editor', async () => {
    const { cookie } = await loginByHttp(master.url, ADMIN.user, ADMIN.password);
    const get = async (path: string) => {
      const r = await fetch(master.url + path, { headers: { Cookie: cookie }, redirect: 'manual' });
      assert.equal(r.status, 200, path);
      return r.text();
    };
    const post = async (path: string, form: Record<string, string>) => {
      const html = await get(path === '/schedules' ? '/schedules/new' : '/projects/lim');
      const csrf = /name="_csrf" value="([^"]*)"/.exec(html)![1]!;
      const r = await fetch(master.url + path, { method: 'POST', redirect: 'manual', headers: { Cookie: cookie, 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: csrf, ...form }) });
      await r.arrayBuffer();
      return r;
    };
    const [root, , last] = seen.failChain!;
    const list = await get('/jobs?project=lim&spider=fail');
    assert.match(list, new RegExp(`href="/jobs/${root!.job}"[^>]*data-retry-badge>retry 2 of 2<`), 'the second retry links to the first run');
    assert.match(list, new RegExp(`href="/jobs/${root!.job}"[^>]*data-retry-badge>retry 1 of 2<`));
    assert.doesNotMatch(list, /data-retry-pending/, 'every retry of the chain has run');
    const lastPage = await get(`/jobs/${last!.job}`);
    assert.match(lastPage, /data-retry-info>retry 2 of 2/);
    const timedOut = await get(`/jobs/${seen.timeoutChain![0]!.job}`);
    assert.match(timedOut, /data-limit-hit><span class="badge timeout">timeout<\/span> ran [\d.]+ s, limit 2 s/);
    assert.match(timedOut, /data-log-limit>.*over its max_runtime of 2 s/);

    // Run now with limits, from the project page's form.
    assert.match(await get('/projects/lim'), /name="max_runtime"[\s\S]*name="retries"/);
    const ran = await post('/projects/lim/run', { spider: 'idle', target_mode: 'auto', priority: '0', max_runtime: '1', nice: '6', retries: '0', retry_delay: '60', max_memory: '' });
    assert.equal(ran.status, 302);
    const job = /\/jobs\/([0-9a-f]+)/.exec(ran.headers.get('location') ?? '')?.[1];
    assert.ok(job, ran.headers.get('location') ?? 'no redirect');
    const r = await waitRunState(master, job!, (x) => x.state === 'finished', 'finished', 60_000) as Run;
    assert.equal(r.outcome, 'timeout');
    assert.deepEqual([r.max_runtime, r.nice, r.max_memory], [1, 6, null]);

    // The schedule editor saves the fields; enabling/disabling from the list keeps them.
    const saved = await post('/schedules', { cron: '0 0 1 1 *', project: 'lim', spider: 'idle', target_mode: 'auto', priority: '0', overlap: 'skip', missed: 'skip',
      max_retries: '2', enabled: '1', max_runtime: '', max_memory: '300', nice: '', retries: '4', retry_delay: '15', keep_running: '1' });
    assert.equal(saved.status, 302);
    const id = /\/schedules\/(\d+)/.exec(saved.headers.get('location') ?? '')?.[1];
    assert.ok(id, saved.headers.get('location') ?? '');
    const editor = await get(`/schedules/${id}`);
    assert.match(editor, /name="max_memory" [^>]*value="300"/);
    assert.match(editor, /name="retries" [^>]*value="4"/);
    assert.match(editor, /name="keep_running" [^>]*checked/, 'keep running is saved and shown');
    const toggled = await post(`/schedules/${id}/toggle`, {});
    assert.equal(toggled.status, 302);
    const api = await master.api<{ schedule: Record<string, unknown> }>('GET', `/api/schedules/${id}`);
    assert.deepEqual([api.body.schedule.enabled, api.body.schedule.max_memory, api.body.schedule.retries, api.body.schedule.retry_delay, api.body.schedule.max_runtime, api.body.schedule.keep_running], [false, 300, 4, 15, null, true]);
  });

  test('a retry due while the master is down runs once after it restarts (even one claimed but never dispatched)', async () => {
    const first = await start({ spider: 'fail', retries: 1, retry_delay: 3 });
    const planned = await waitFor('the retry to be planned', async () => {
      const c = await chain('fail', first.job);
      return c.length === 1 && c[0]!.retry_at !== null ? c[0] : undefined;
    }, 30_000, 100);
    await master.kill9();
    // As if the master had claimed the retry and died before dispatching it.
    const db = await openDatabaseOf(master);
    await db.run(`UPDATE runs SET retry_claimed_at = ? WHERE job = ?`, [Date.now(), first.job]);
    await db.close();
    master = await startMaster({ dataDir, args: masterArgs() });
    const c = await waitFor('the retry after the restart', async () => {
      const x = await chain('fail', first.job);
      return x.length === 2 && x.every(ended) ? x : undefined;
    }, 60_000, 200);
    assert.ok(c[1]!.created_at >= planned.retry_at!, 'not before it was due');
    // Once: the retry that ran is the one the failed run's note names, and there is no other.
    assert.match((await chain('fail', first.job))[0]!.note ?? '', new RegExp(`retry 1 of 1: ${c[1]!.job}`));
    assert.equal((await runs('fail')).filter((r) => r.retry_of_job === first.job).length, 1);
  });
});

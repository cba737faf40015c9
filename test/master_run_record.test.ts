// What the master records of a run, with a real master and a real slave. Started/Ended/Duration
// are the node's, not when the master noticed: a spider held running until the test releases it
// (a known minimum run time), and a spider that ends within one heartbeat. A run that exited 0 but
// finished with errors is recorded so, and an alert rule counts it.
// Run: npx tsx --test test/master_run_record.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { startMaster, CLUSTER_TOKEN, type MasterHandle } from './helpers/master_process.ts';
import { tempDir, getJson, waitFor, type SlaveHandle } from './helpers/slave_process.ts';
import { joinSlave, deployNodePackage, waitRunState, sleep, type RunView } from './helpers/master_slave_pair.ts';
import { parseScrapydTime, type JobRecord } from './helpers/runner_checks.ts';
import { gate } from './helpers/gates.ts';

const work = tempDir('spiderplane-job-times-');
let master: MasterHandle;
let slave: SlaveHandle;
const gateDirs: string[] = [];

before(async () => {
  master = await startMaster({ args: ['--heartbeat-interval', '0.5'] });
  slave = await joinSlave(master, 'n1');
  await deployNodePackage(master, work, 'gen', '1');
});

after(async () => {
  await slave?.stop().catch(() => undefined);
  await master?.stop().catch(() => undefined);
  for (const d of [work, ...gateDirs]) await rm(d, { recursive: true, force: true });
});

async function startRun(spider: string, args: Record<string, string>): Promise<string> {
  const r = await master.api<{ runs: RunView[] }>('POST', '/api/runs', { project: 'gen', spider, args, target: { mode: 'node', node: 'n1' } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.runs[0]!.job;
}

/** The slave's own record of the job (/jobs.json; the slave answers the cluster token only). */
async function slaveJob(job: string): Promise<JobRecord> {
  const r = await getJson(slave.url, '/jobs.json', { job }, { Authorization: `Bearer ${CLUSTER_TOKEN}` });
  const rec = (r.jobs as JobRecord[] | undefined)?.[0];
  assert.ok(rec, JSON.stringify(r));
  return rec;
}

/** The master's run and the slave's record of the same job agree on when it started and ended. */
function assertNodeTimes(run: RunView, rec: JobRecord): void {
  const started = run.started_at as number;
  const ended = run.ended_at as number;
  assert.ok(started < ended, `Started ${started} is not before Ended ${ended}`);
  // The slave's own times (Scrapyd's local-time strings, to the microsecond).
  const slaveStart = parseScrapydTime(rec.start_time!) * 1000;
  const slaveEnd = parseScrapydTime(rec.end_time!) * 1000;
  assert.ok(Math.abs(started - slaveStart) <= 1, `master started_at ${started} vs the slave's start ${slaveStart}`);
  assert.ok(Math.abs(ended - slaveEnd) <= 1, `master ended_at ${ended} vs the slave's end ${slaveEnd}`);
  // The slave's duration is rounded to the millisecond (and 2.047 * 1000 is 2047.0000000000002): allow that 1 ms.
  assert.ok(ended - started >= Math.round(rec.duration_seconds! * 1000) - 1, `master duration ${ended - started} ms is shorter than the slave's ${rec.duration_seconds} s`);
}

test('a held run: the master shows the node\'s start, end and a duration at least the time it was held', async () => {
  const g = gate();
  gateDirs.push(g.dir);
  const job = await startRun('count', { n: '3', interval_ms: '20', ...g.args(0) });
  await waitRunState(master, job, (r) => r.state === 'running', 'running');
  const heldFrom = Date.now();
  // The run's length is what this test measures: it is held at least this long, then released.
  await sleep(1500);
  g.release(0);
  const heldFor = Date.now() - heldFrom;
  const run = await waitRunState(master, job, (r) => r.state === 'finished' && r.items_count !== null, 'finished');
  const rec = await slaveJob(job);
  assert.equal(rec.items_count, 3);
  assertNodeTimes(run, rec);
  assert.ok((run.ended_at as number) - (run.started_at as number) >= heldFor, `duration ${(run.ended_at as number) - (run.started_at as number)} ms < held ${heldFor} ms`);
  // The exact timestamps of /jobs.json are what the master took.
  assert.equal(run.started_at, Math.floor(rec.start_timestamp! * 1000));
  assert.equal(run.ended_at, Math.ceil(rec.end_timestamp! * 1000));
});

test('a run shorter than a heartbeat still has Started before Ended, as the node measured', async () => {
  const job = await startRun('hello', {});
  const run = await waitRunState(master, job, (r) => r.state === 'finished' && r.items_count !== null, 'finished');
  const rec = await slaveJob(job);
  assert.equal(rec.outcome, 'succeeded');
  assertNodeTimes(run, rec);
});

test('a run that exited 0 with no items after a run with some: finished_with_errors on the master, and an alert rule fires', async () => {
  const created = await master.api<{ rule: { id: number } }>('POST', '/api/alerts/rules', {
    kind: 'job_finished_with_errors', scope: 'spider', project: 'gen', spider: 'count', recipients: ['ops@example.com'],
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  // The held run of the first test scraped 3 items; this one scrapes none.
  const job = await startRun('count', { n: '0', interval_ms: '10' });
  const run = await waitRunState(master, job, (r) => r.state === 'finished', 'finished');
  assert.equal(run.exit_code, 0);
  assert.equal(run.outcome, 'finished_with_errors');
  assert.equal(run.note, 'finished with errors: no items, where the previous run scraped 3');
  const firing = await waitFor('the job_finished_with_errors alert', async () => {
    const r = await master.api<{ firings: Array<{ rule_id: number; title: string; detail: string | null }> }>('GET', '/api/alerts/firings?state=firing');
    return r.body.firings?.find((f) => f.rule_id === created.body.rule.id);
  });
  assert.equal(firing.title, 'job gen/count finished with errors');
  assert.match(firing.detail ?? '', /no items, where the previous run scraped 3 on n1/);
});

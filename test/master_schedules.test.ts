// The master's cron schedules against a real master and one real slave: seconds-level crons fire
// and are recorded, a kill -9 of the master across occurrences fires each occurrence at most once
// (missed policy run_once / skip), the overlap policy, enable/disable/delete/run-now, and every
// way the schedule API refuses bad input.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { startMaster, type MasterHandle } from './helpers/master_process.ts';
import { tempDir, waitFor, type SlaveHandle } from './helpers/slave_process.ts';
import { FAST_MASTER_ARGS, deployNodePackage, joinSlave, sleep, waitNodeStatus, type RunView } from './helpers/master_slave_pair.ts';
import { gate } from './helpers/gates.ts';

interface Fire { scheduled_for: number; handled_at: number; outcome: string; detail: string | null }
interface ScheduleView { id: number; name: string; cron: string; enabled: boolean; next_runs: string[]; overlap: string; missed: string; last_fire_at: number | null; [k: string]: unknown }
interface ScheduleDetail { schedule: ScheduleView; fires: Fire[]; runs: RunView[] }

let master: MasterHandle;
let slave: SlaveHandle;
let work: string;

const BASE = { project: 'gen', spider: 'hello' };

async function createSchedule(body: Record<string, unknown>): Promise<ScheduleView> {
  const r = await master.api<{ schedule: ScheduleView; error?: string }>('POST', '/api/schedules', { ...BASE, ...body });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.schedule;
}

async function detail(id: number): Promise<ScheduleDetail> {
  const r = await master.api<ScheduleDetail>('GET', `/api/schedules/${id}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

async function runsOf(id: number, state?: string): Promise<{ runs: RunView[]; total: number }> {
  const r = await master.api<{ runs: RunView[]; total: number }>('GET', `/api/runs?schedule=${id}&limit=1000${state ? `&state=${state}` : ''}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

async function setEnabled(s: ScheduleView, enabled: boolean): Promise<ScheduleView> {
  const { id: _id, next_runs: _n, last_fire_at: _l, created_at: _c, updated_at: _u, ...input } = s;
  const r = await master.api<{ schedule: ScheduleView }>('PUT', `/api/schedules/${s.id}`, { ...input, enabled });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.schedule.enabled, enabled);
  return r.body.schedule;
}

/** Waits for a fire matching pred and returns it. */
async function waitFire(id: number, pred: (f: Fire) => boolean, what: string, timeoutMs = 60_000): Promise<Fire> {
  return waitFor(`schedule ${id}: ${what}`, async () => (await detail(id)).fires.find(pred), timeoutMs, 100);
}

/**
 * Waits until the schedule's last claimed occurrence is recorded (a fire claimed just before the
 * schedule was disabled may still be dispatching); returns the detail then.
 */
async function settled(id: number): Promise<ScheduleDetail> {
  return waitFor(`schedule ${id}: its last claimed occurrence recorded`, async () => {
    const d = await detail(id);
    const last = d.schedule.last_fire_at;
    return last === null || d.fires.some((f) => f.scheduled_for === last) ? d : undefined;
  }, 60_000, 100);
}

/** No occurrence fired twice, and one run per fired occurrence (single-node target). */
async function assertFiredOnce(id: number): Promise<Fire[]> {
  const { fires } = await settled(id);
  const fired = fires.filter((f) => f.outcome === 'dispatched' || f.outcome === 'missed-run');
  const seen = new Map<number, number>();
  for (const f of fired) seen.set(f.scheduled_for, (seen.get(f.scheduled_for) ?? 0) + 1);
  for (const [t, n] of seen) assert.equal(n, 1, `occurrence ${new Date(t).toISOString()} fired ${n} times: ${JSON.stringify(fires)}`);
  // An occurrence is either fired or recorded missed, never both.
  for (const f of fires.filter((x) => x.outcome === 'missed')) {
    assert.ok(!seen.has(f.scheduled_for), `occurrence ${new Date(f.scheduled_for).toISOString()} both missed and fired: ${JSON.stringify(fires)}`);
  }
  const runs = await runsOf(id);
  assert.equal(runs.total, fired.length, `runs of schedule ${id} (${runs.runs.map((r) => r.job).join(', ')}) vs fired occurrences ${JSON.stringify(fired)}`);
  for (const f of fired) {
    const job = /^([0-9a-f]{32})@/.exec(f.detail ?? '')?.[1];
    assert.ok(job, `fire detail names its run: ${JSON.stringify(f)}`);
    assert.ok(runs.runs.some((r) => r.job === job && r.schedule_id === id), `run ${job} of fire ${JSON.stringify(f)} is listed for the schedule`);
  }
  return fires;
}

before(async () => {
  work = tempDir('spiderplane-sched-');
  master = await startMaster({ args: FAST_MASTER_ARGS });
  slave = await joinSlave(master, 'n1');
  await deployNodePackage(master, work);
});

after(async () => {
  await master?.api('POST', '/api/runs/stop', { project: 'gen' }).catch(() => undefined);
  await slave?.stop();
  await master?.stop();
  for (const dir of [work, slave?.dataDir, master?.dataDir]) if (dir) await rm(dir, { recursive: true, force: true });
});

describe('schedules fire', () => {
  test('a 6-field seconds cron fires; fires and runs are listed; next_runs are 2 s apart', async () => {
    const s = await createSchedule({ name: 'every-2s', cron: '*/2 * * * * *', args: { foo: 'bar' }, overlap: 'allow' });
    assert.equal(s.cron, '*/2 * * * * *');
    assert.equal(s.enabled, true);
    assert.equal(s.next_runs.length, 5);
    const times = s.next_runs.map((t) => {
      assert.match(t, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000Z$/);
      return Date.parse(t);
    });
    for (let i = 1; i < times.length; i++) assert.equal(times[i]! - times[i - 1]!, 2000, `next_runs ${s.next_runs.join(', ')}`);
    for (const t of times) assert.equal(new Date(t).getSeconds() % 2, 0);
    assert.ok(times[0]! > Date.now() - 1000);

    const fire = await waitFire(s.id, (f) => f.outcome === 'dispatched', 'a dispatched fire');
    assert.equal(fire.scheduled_for % 2000, 0);
    const d = await detail(s.id);
    assert.ok(d.runs.length >= 1, JSON.stringify(d));
    for (const r of d.runs) {
      assert.equal(r.schedule_id, s.id);
      assert.equal(r.spider, 'hello');
      assert.equal(r.node, 'n1');
      assert.deepEqual(r.args, { foo: 'bar' });
    }
    assert.ok(d.schedule.last_fire_at !== null && d.schedule.last_fire_at >= fire.scheduled_for);
    // The run the fire made finishes on the slave.
    const job = /^([0-9a-f]{32})@n1$/.exec(fire.detail ?? '')?.[1];
    assert.ok(job, `fire detail: ${fire.detail}`);
    const run = await waitFor(`run ${job} to finish`, async () => {
      const r = await master.api<{ run: RunView }>('GET', `/api/runs/${job}`);
      return r.body.run?.state === 'finished' ? r.body.run : undefined;
    });
    assert.equal(run.outcome, 'succeeded');
    assert.equal(run.items_count, 2);
    // GET /api/schedules lists it with its next runs.
    const list = await master.api<{ schedules: ScheduleView[] }>('GET', '/api/schedules');
    const listed = list.body.schedules.find((x) => x.id === s.id);
    assert.ok(listed);
    assert.equal(listed.next_runs.length, 5);
    assert.equal(Date.parse(listed.next_runs[1]!) - Date.parse(listed.next_runs[0]!), 2000);

    await setEnabled(s, false);
    await assertFiredOnce(s.id);
    assert.equal((await master.api('DELETE', `/api/schedules/${s.id}`)).status, 200);
  });

  test('a master kill -9 across seconds-level occurrences: missed run_once fires once, missed skip records missed', async () => {
    const once = await createSchedule({ name: 'once', cron: '*/5 * * * * *', missed: 'run_once', overlap: 'allow' });
    const skip = await createSchedule({ name: 'skip', cron: '*/5 * * * * *', missed: 'skip', overlap: 'allow' });
    assert.equal(once.missed, 'run_once');
    assert.equal(skip.missed, 'skip');

    // Right after an occurrence fired for both schedules, kill -9 the master.
    const firedBoth = await waitFor('both schedules to fire one occurrence', async () => {
      const [a, b] = await Promise.all([detail(once.id), detail(skip.id)]);
      const fa = a.fires.find((f) => f.outcome === 'dispatched');
      const fb = b.fires.find((f) => f.outcome === 'dispatched' && f.scheduled_for === fa?.scheduled_for);
      return fa && fb ? fa.scheduled_for : undefined;
    }, 60_000, 50);
    const port = new URL(master.url).port;
    const dataDir = master.dataDir;
    await master.kill9();
    // Stay down across at least one occurrence (firedBoth + 5 s).
    const wait = firedBoth + 5000 + 600 - Date.now();
    if (wait > 0) await sleep(wait);
    const restartAt = Date.now();
    master = await startMaster({ dataDir, args: [...FAST_MASTER_ARGS, '--port', port] });
    const upAt = Date.now();
    assert.ok(upAt > firedBoth + 5000);

    // run_once: the last missed occurrence ran once (outcome missed-run); earlier missed ones are recorded missed.
    const a = await detail(once.id);
    const missedRun = a.fires.filter((f) => f.outcome === 'missed-run');
    assert.equal(missedRun.length, 1, `one missed-run fire: ${JSON.stringify(a.fires)}`);
    const mr = missedRun[0]!;
    assert.ok(mr.scheduled_for > firedBoth && mr.scheduled_for <= upAt, JSON.stringify(mr));
    assert.equal(mr.scheduled_for % 5000, 0);
    // Every occurrence between the pre-kill fire and the restart is accounted for exactly once.
    const downOccurrences: number[] = [];
    for (let t = firedBoth + 5000; t <= restartAt; t += 5000) downOccurrences.push(t);
    assert.ok(downOccurrences.length >= 1);
    for (const t of downOccurrences) {
      const n = a.fires.filter((f) => f.scheduled_for === t).length;
      assert.equal(n, 1, `occurrence ${new Date(t).toISOString()} recorded ${n} times: ${JSON.stringify(a.fires)}`);
    }
    // The one run is for the last occurrence missed (a slow start may let one more fall after restartAt).
    assert.equal(mr.scheduled_for, Math.max(...a.fires.filter((f) => f.outcome === 'missed' || f.outcome === 'missed-run').map((f) => f.scheduled_for)));
    for (const f of a.fires.filter((x) => x.scheduled_for > firedBoth && x.scheduled_for < mr.scheduled_for)) assert.equal(f.outcome, 'missed', JSON.stringify(f));
    const mrJob = /^([0-9a-f]{32})@n1$/.exec(mr.detail ?? '')?.[1];
    assert.ok(mrJob, `missed-run detail names its run: ${mr.detail}`);

    // skip: every occurrence while down is recorded missed, no run for any of them.
    const b = await detail(skip.id);
    assert.ok(!b.fires.some((f) => f.outcome === 'missed-run'), JSON.stringify(b.fires));
    for (const t of downOccurrences) {
      const at = b.fires.filter((f) => f.scheduled_for === t);
      assert.equal(at.length, 1, `occurrence ${new Date(t).toISOString()}: ${JSON.stringify(b.fires)}`);
      assert.equal(at[0]!.outcome, 'missed', JSON.stringify(at));
      assert.match(at[0]!.detail ?? '', /not running/);
    }
    assert.ok(!(await runsOf(skip.id)).runs.some((r) => r.created_at >= restartAt && r.created_at < upAt), 'skip made no run at start-up');

    // Both go on at their next occurrence after the restart.
    const lastDown = Math.max(mr.scheduled_for, ...b.fires.map((f) => f.scheduled_for));
    await waitNodeStatus(master, 'n1', 'online');
    await Promise.all([
      waitFire(once.id, (f) => f.outcome === 'dispatched' && f.scheduled_for > lastDown, 'a fire after the restart'),
      waitFire(skip.id, (f) => f.outcome === 'dispatched' && f.scheduled_for > lastDown, 'a fire after the restart'),
    ]);
    await setEnabled((await detail(once.id)).schedule, false);
    await setEnabled((await detail(skip.id)).schedule, false);
    await assertFiredOnce(once.id);
    await assertFiredOnce(skip.id);
    for (const id of [once.id, skip.id]) assert.equal((await master.api('DELETE', `/api/schedules/${id}`)).status, 200);
  });
});

describe('overlap policy', () => {
  test('skip: a long run blocks later occurrences (skipped-overlap); allow: runs overlap', async () => {
    // Held after the first item (a gate never released): running until the test stops them.
    const g = gate();
    const long = { spider: 'count', args: { n: '1000', interval_ms: '50', ...g.args(1) } };
    const skip = await createSchedule({ name: 'ov-skip', cron: '*/2 * * * * *', overlap: 'skip', ...long });
    const allow = await createSchedule({ name: 'ov-allow', cron: '*/2 * * * * *', overlap: 'allow', ...long });
    await waitFor('two skipped-overlap fires after a dispatched one', async () => {
      const { fires } = await detail(skip.id);
      const first = fires.filter((f) => f.outcome === 'dispatched').map((f) => f.scheduled_for);
      return first.length && fires.filter((f) => f.outcome === 'skipped-overlap' && f.scheduled_for > Math.min(...first)).length >= 2 ? true : undefined;
    }, 60_000, 200);
    await waitFor('two overlapping runs of the allow schedule', async () => ((await runsOf(allow.id, 'active')).total >= 2 ? true : undefined), 60_000, 200);
    await setEnabled(skip, false);
    await setEnabled(allow, false);
    await settled(skip.id);
    await settled(allow.id);

    const ds = await detail(skip.id);
    assert.equal(ds.fires.filter((f) => f.outcome === 'dispatched').length, 1, JSON.stringify(ds.fires));
    for (const f of ds.fires.filter((x) => x.outcome === 'skipped-overlap')) assert.match(f.detail ?? '', /still active/);
    const skipRuns = await runsOf(skip.id);
    assert.equal(skipRuns.total, 1, 'only one run of the skip schedule');
    assert.ok(['pending', 'running'].includes(skipRuns.runs[0]!.state), skipRuns.runs[0]!.state);
    await assertFiredOnce(skip.id);

    const da = await detail(allow.id);
    assert.ok(!da.fires.some((f) => f.outcome === 'skipped-overlap'), JSON.stringify(da.fires));
    await assertFiredOnce(allow.id);

    const stop = await master.api<{ cancelled: unknown[] }>('POST', '/api/runs/stop', { project: 'gen', spider: 'count' });
    assert.equal(stop.status, 200, JSON.stringify(stop.body));
    assert.ok(stop.body.cancelled.length >= 3);
    await waitFor('the count runs to end', async () => ((await master.api<{ total: number }>('GET', '/api/runs?state=active&spider=count')).body.total === 0 ? true : undefined), 60_000, 250);
    for (const id of [skip.id, allow.id]) assert.equal((await master.api('DELETE', `/api/schedules/${id}`)).status, 200);
    await rm(g.dir, { recursive: true, force: true });
  });
});

describe('enable, disable, delete, run now', () => {
  test('PUT enabled:false stops firing, enabled:true resumes; DELETE removes it', async () => {
    const s = await createSchedule({ name: 'toggle', cron: '*/2 * * * * *', overlap: 'allow' });
    await waitFire(s.id, (f) => f.outcome === 'dispatched', 'a first fire');
    const off = await setEnabled(s, false);
    const disabledAt = Date.now();
    assert.deepEqual(off.next_runs, [], 'a disabled schedule has no next runs');
    const before = (await settled(s.id)).fires.length; // a fire claimed just before the PUT is recorded by now
    const runsBefore = (await runsOf(s.id)).total;
    await sleep(4500); // two occurrences pass while it is disabled: nothing may happen in them
    const d = await detail(s.id);
    assert.ok(!d.fires.some((f) => f.scheduled_for > disabledAt), `no fires while disabled: ${JSON.stringify(d.fires)}`);
    assert.equal(d.fires.length, before, `no fires while disabled: ${JSON.stringify(d.fires)}`);
    assert.equal((await runsOf(s.id)).total, runsBefore);
    assert.equal(d.schedule.enabled, false);

    const resumedAt = Date.now();
    const on = await setEnabled(d.schedule, true);
    assert.equal(on.next_runs.length, 5);
    const f = await waitFire(s.id, (x) => x.outcome === 'dispatched' && x.scheduled_for >= resumedAt, 'a fire after re-enabling');
    // Occurrences that fell while disabled are not caught up.
    assert.ok(!(await detail(s.id)).fires.some((x) => x.outcome === 'missed' || x.outcome === 'missed-run'));
    assert.ok(f.scheduled_for >= resumedAt);

    const del = await master.api('DELETE', `/api/schedules/${s.id}`);
    assert.equal(del.status, 200, JSON.stringify(del.body));
    // A fire in flight at the DELETE may still add its run: count once the runs stop changing.
    let runsAfterDelete = -1;
    await waitFor('the runs of the deleted schedule to settle', async () => {
      const n = (await runsOf(s.id)).total;
      const same = n === runsAfterDelete;
      runsAfterDelete = n;
      return same ? true : undefined;
    }, 60_000, 500);
    assert.equal((await master.api('GET', `/api/schedules/${s.id}`)).status, 404);
    assert.equal((await master.api('DELETE', `/api/schedules/${s.id}`)).status, 404);
    assert.equal((await master.api('POST', `/api/schedules/${s.id}/run`)).status, 404);
    assert.ok(!(await master.api<{ schedules: ScheduleView[] }>('GET', '/api/schedules')).body.schedules.some((x) => x.id === s.id));
    await sleep(2500);
    assert.equal((await runsOf(s.id)).total, runsAfterDelete, 'a deleted schedule makes no more runs');
  });

  test('POST /api/schedules/:id/run runs it now (fire outcome manual)', async () => {
    const s = await createSchedule({ name: 'nightly', cron: '0 3 * * *', args: { who: 'manual' } });
    const r = await master.api<{ runs: RunView[] }>('POST', `/api/schedules/${s.id}/run`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.runs.length, 1);
    const run = r.body.runs[0]!;
    assert.equal(run.schedule_id, s.id);
    assert.equal(run.created_by, 'admin');
    assert.deepEqual(run.args, { who: 'manual' });
    const d = await detail(s.id);
    assert.equal(d.fires.length, 1);
    assert.equal(d.fires[0]!.outcome, 'manual');
    assert.match(d.fires[0]!.detail ?? '', new RegExp(`admin: ${run.job}@n1`));
    assert.ok(d.runs.some((x) => x.job === run.job));
    // Running it manually does not move its cron rhythm.
    assert.equal(d.schedule.last_fire_at, null);
    assert.equal(new Date(d.schedule.next_runs[0]!).getMinutes(), 0);
    assert.equal((await master.api('DELETE', `/api/schedules/${s.id}`)).status, 200);
  });
});

describe('bad input', () => {
  const refused = async (body: unknown, pattern: RegExp, status = 400) => {
    const r = await master.api<{ error: string }>('POST', '/api/schedules', body);
    assert.equal(r.status, status, `${JSON.stringify(body)} -> ${JSON.stringify(r.body)}`);
    assert.match(r.body.error, pattern, JSON.stringify(body));
  };
  const ok = { ...BASE, cron: '0 3 * * *' };

  test('POST /api/schedules refuses bad crons, timezones, names and fields with a clear message', async () => {
    const count = (await master.api<{ schedules: unknown[] }>('GET', '/api/schedules')).body.schedules.length;
    await refused({ ...ok, cron: '61 * * * *' }, /CronPattern.*minute.*61/);
    await refused({ ...ok, cron: '*/2 * * * 8' }, /CronPattern/);
    await refused({ ...ok, cron: '* * * *' }, /CronPattern.*(five|5)/);
    await refused({ ...ok, cron: '* * * * * * *' }, /CronPattern.*7 parts/);
    await refused({ ...ok, cron: 'every day' }, /CronPattern/);
    await refused({ ...ok, cron: '' }, /'cron' is required/);
    await refused({ ...ok, cron: 5 }, /'cron' must be a string/);
    await refused({ project: 'gen', spider: 'hello' }, /'cron' is required/);
    await refused({ ...ok, timezone: 'Mars/Olympus_Mons' }, /timezone 'Mars\/Olympus_Mons' is not a valid IANA timezone/);
    await refused({ ...ok, timezone: 42 }, /'timezone' must be a string/);
    await refused({ ...ok, project: 'nope' }, /project 'nope' not found/);
    await refused({ ...ok, spider: 'nope' }, /spider 'nope' not found/);
    await refused({ ...ok, version: '99' }, /version '99' not found/);
    await refused({ cron: '0 3 * * *', spider: 'hello' }, /'project' is required/);
    await refused({ cron: '0 3 * * *', project: 'gen' }, /'spider' is required/);
    await refused({ ...ok, project: '../etc' }, /'project' must not contain/);
    await refused({ ...ok, spider: 'a/b' }, /'spider' must not contain/);
    await refused({ ...ok, overlap: 'sometimes' }, /'overlap' must be one of skip, allow/);
    await refused({ ...ok, missed: 'always' }, /'missed' must be one of skip, run_once/);
    await refused({ ...ok, missed: true }, /'missed' must be one of/);
    await refused({ ...ok, args: ['a=1'] }, /'args' must be an object of strings/);
    await refused({ ...ok, args: 'a=1' }, /'args' must be an object of strings/);
    await refused({ ...ok, args: { a: { b: 1 } } }, /'args\.a' must be a string/);
    await refused({ ...ok, args: { a: null } }, /'args\.a' must be a string/);
    await refused({ ...ok, args: { 'a=b': '1' } }, /'args' has an invalid name/);
    await refused({ ...ok, settings: [1] }, /'settings' must be an object of strings/);
    await refused({ ...ok, priority: 'high' }, /'priority' must be a number/);
    await refused({ ...ok, priority: '1' }, /'priority' must be a number/);
    await refused({ ...ok, max_retries: -1 }, /'max_retries' must be at least 0/);
    await refused({ ...ok, max_retries: 1.5 }, /'max_retries' must be an integer/);
    await refused({ ...ok, max_retries: 21 }, /'max_retries' must be at most 20/);
    await refused({ ...ok, enabled: 'yes' }, /'enabled' must be true or false/);
    await refused({ ...ok, target: 'everywhere' }, /'target' must be/);
    await refused({ ...ok, target: { mode: 'bogus' } }, /'mode' must be one of/);
    await refused({ ...ok, target: { mode: 'node' } }, /'node' is required/);
    await refused({ ...ok, target: { mode: 'nodes', count: 0 } }, /'count' must be at least 1/);
    await refused({ ...ok, name: 7 }, /'name' must be a string/);
    await refused([ok], /the body must be a JSON object/);

    const raw = async (body: string, type: string | null) => {
      const headers: Record<string, string> = { Authorization: 'Basic ' + Buffer.from('admin:admin-password-1').toString('base64') };
      if (type) headers['Content-Type'] = type;
      const r = await fetch(`${master.url}/api/schedules`, { method: 'POST', headers, body });
      return { status: r.status, body: (await r.json()) as { error: string } };
    };
    const notJson = await raw('{"cron": "0 3 * * *", ', 'application/json');
    assert.equal(notJson.status, 400);
    assert.match(notJson.body.error, /the body is not valid JSON/);
    const form = await raw('project=gen&spider=hello&cron=0+3+*+*+*', 'application/x-www-form-urlencoded');
    assert.equal(form.status, 415);
    assert.match(form.body.error, /Content-Type: application\/json/);
    const noType = await raw(JSON.stringify(ok), null);
    assert.ok(noType.status === 415 || noType.status === 400, `${noType.status}`);
    assert.match(noType.body.error, /Content-Type: application\/json/);

    assert.equal((await master.api<{ schedules: unknown[] }>('GET', '/api/schedules')).body.schedules.length, count, 'nothing was created');
  });

  test('PUT refuses bad input and leaves the schedule as it was; unknown ids are 404', async () => {
    const s = await createSchedule({ name: 'keep', cron: '0 3 * * *' });
    const put = await master.api<{ error: string }>('PUT', `/api/schedules/${s.id}`, { ...ok, cron: '0 25 * * *' });
    assert.equal(put.status, 400);
    assert.match(put.body.error, /CronPattern.*hour/);
    const put2 = await master.api<{ error: string }>('PUT', `/api/schedules/${s.id}`, { ...ok, overlap: 'never' });
    assert.equal(put2.status, 400);
    assert.equal((await detail(s.id)).schedule.cron, '0 3 * * *');
    assert.equal((await master.api('PUT', '/api/schedules/999999', ok)).status, 404);
    assert.equal((await master.api('GET', '/api/schedules/999999')).status, 404);
    assert.equal((await master.api('GET', '/api/schedules/abc')).status, 404);
    assert.equal((await master.api('DELETE', `/api/schedules/${s.id}`)).status, 200);
  });

  test('POST /api/cron/preview: valid -> the next 5 times; invalid -> {valid:false, error}', async () => {
    const v = await master.api<{ valid: boolean; next: string[] }>('POST', '/api/cron/preview', { cron: '*/2 * * * * *' });
    assert.equal(v.status, 200, JSON.stringify(v.body));
    assert.equal(v.body.valid, true);
    assert.equal(v.body.next.length, 5);
    for (let i = 1; i < 5; i++) assert.equal(Date.parse(v.body.next[i]!) - Date.parse(v.body.next[i - 1]!), 2000);
    const daily = await master.api<{ valid: boolean; next: string[] }>('POST', '/api/cron/preview', { cron: '0 3 * * *', timezone: 'UTC', count: 3 });
    assert.equal(daily.body.valid, true);
    assert.deepEqual(daily.body.next.map((t) => t.slice(10)), ['T03:00:00.000Z', 'T03:00:00.000Z', 'T03:00:00.000Z']);
    const tz = await master.api<{ valid: boolean; next: string[] }>('POST', '/api/cron/preview', { cron: '0 3 * * *', timezone: 'Asia/Kolkata' });
    assert.ok(tz.body.next.every((t) => t.endsWith('T21:30:00.000Z')), JSON.stringify(tz.body));
    for (const cron of ['61 * * * *', '* * * *', '* * * * * * *']) {
      const r = await master.api<{ valid: boolean; error: string; next?: unknown }>('POST', '/api/cron/preview', { cron });
      assert.equal(r.status, 200);
      assert.equal(r.body.valid, false, cron);
      assert.match(r.body.error, /CronPattern/);
      assert.equal(r.body.next, undefined);
    }
    const badTz = await master.api<{ valid: boolean; error: string }>('POST', '/api/cron/preview', { cron: '0 3 * * *', timezone: 'Nowhere/City' });
    assert.equal(badTz.body.valid, false);
    assert.match(badTz.body.error, /timezone/);
    assert.equal((await master.api('POST', '/api/cron/preview', {})).status, 400);
  });
});

// Flat cost at scale, in one process on real SQLite files: per-state counts kept exact by triggers
// (across changes and a reopen), lists that filter before their limit, query plans without a
// temporary sort, history retention (master runs by age and count, never active ones; the slave's
// history), metric tiers and their expiry, and host metrics read without a child process.
// Run: npx tsx --test test/scale_unit.test.ts
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { openMasterDb } from '../master/db.ts';
import { RunStore, COUNT_CAP, LOST_TAKE_BACK_MS } from '../master/runs/run_store.ts';
import { RunRetention } from '../master/runs/run_retention.ts';
import { MetricHistory, MINUTE, HOUR, DAY, MINUTE_RETENTION_MS, HOUR_RETENTION_MS, PRUNE_BATCH } from '../master/metrics/metric_history.ts';
import { SqliteDb } from '../master/store/sqlite_db.ts';
import { NodeRegistry } from '../master/nodes/node_registry.ts';
import { openSlaveDb } from '../slave/db.ts';
import { JobStore } from '../slave/jobs/job_store.ts';
import { HistoryPruner } from '../slave/jobs/history_pruner.ts';
import { cpuPercent, diskUsage, parseCpuTimes, parseMeminfo, parseMounts, parseNetDev } from '../slave/metrics/proc_readers.ts';
import { SystemMetrics } from '../slave/metrics/system_metrics.ts';
import { fillRuns } from './helpers/run_fill.ts';
import { tempDir } from './helpers/slave_process.ts';
import type { Db } from '../common/sqlite.ts';

const DAY_MS = 24 * 3600_000;

function groupCounts(db: Db, table: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of db.prepare(`SELECT state, COUNT(*) AS n FROM ${table} GROUP BY state`).all() as Array<{ state: string; n: number }>) out[r.state] = r.n;
  return out;
}

const newRun = (job: string, project = 'p') => ({
  job, project, spider: 's', version: null, args: {}, settings: {}, priority: 0, node_id: 1, node: 'n1', schedule_id: null, retry_of: null,
  attempt: 1, retries_left: 0, created_by: null,
});

describe('master run counts', () => {
  test('run_counts stays equal to COUNT(*) GROUP BY state across inserts, state changes, deletes and a reopen', async () => {
    const dir = tempDir('spiderplane-scale-counts-');
    let db = openMasterDb(dir);
    let runs = new RunStore(new SqliteDb(db));
    fillRuns(db, { count: 300, state: (i) => (['finished', 'lost', 'failed', 'running', 'pending'] as const)[i % 5]! });
    const a = await runs.insert(newRun('a'));
    const b = await runs.insert(newRun('b'));
    await runs.markDispatched(a.id);
    await runs.update((await runs.get(a.id))!, { state: 'running' });
    await runs.update((await runs.get(a.id))!, { state: 'running', note: 'same state: no count change' });
    await runs.update((await runs.get(b.id))!, { state: 'finished', outcome: 'cancelled', ended_at: Date.now() });
    db.prepare(`DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE state = 'lost' LIMIT 7)`).run();
    assert.deepEqual(await runs.counts(), groupCounts(db, 'runs'));
    db.close();
    db = openMasterDb(dir);
    runs = new RunStore(new SqliteDb(db));
    assert.deepEqual(await runs.counts(), groupCounts(db, 'runs'), 'the counts survive a reopen');
    assert.equal(await runs.total(), (db.prepare(`SELECT COUNT(*) AS n FROM runs`).get() as { n: number }).n);
    db.close();
  });

  test('query totals: exact from the counts, capped and flagged for other filters', async () => {
    const db = openMasterDb(tempDir('spiderplane-scale-total-'));
    const runs = new RunStore(new SqliteDb(db));
    fillRuns(db, { count: COUNT_CAP + 50, project: (i) => (i % 2 ? 'busy' : 'other') });
    assert.deepEqual((await runs.query({ limit: 10, offset: 0 })).total, COUNT_CAP + 50);
    assert.equal((await runs.query({ state: 'finished', limit: 10, offset: 0 })).total_exact, true);
    const busy = await runs.query({ project: 'busy', limit: 10, offset: 0 });
    assert.equal(busy.total, (COUNT_CAP + 50) / 2);
    assert.equal(busy.total_exact, true);
    const all = await runs.query({ spider: 's', limit: 10, offset: 0 });
    assert.deepEqual([all.total, all.total_exact], [COUNT_CAP, false]);
    db.close();
  });
});

describe('lists filter before their limit', () => {
  test("finishedList of a quiet project gives that project's newest 100, however busy the others are", async () => {
    const db = openMasterDb(tempDir('spiderplane-scale-list-'));
    const runs = new RunStore(new SqliteDb(db));
    const now = Date.now();
    // 150 old runs of 'quiet', then 5000 newer runs of 'busy'.
    fillRuns(db, { count: 150, project: () => 'quiet', endedAt: (i) => now - 10 * DAY_MS + i * 1000 });
    fillRuns(db, { count: 5000, project: () => 'busy', endedAt: (i) => now - DAY_MS + i * 1000 });
    const quiet = await runs.finishedList(100, 'quiet');
    assert.equal(quiet.length, 100);
    assert.ok(quiet.every((r) => r.project === 'quiet'));
    const expected = (db.prepare(`SELECT id FROM runs WHERE project = 'quiet' ORDER BY ended_at DESC, id DESC LIMIT 100`).all() as Array<{ id: number }>).map((r) => r.id);
    assert.deepEqual(quiet.map((r) => r.id), expected);
    assert.equal((await runs.finishedList(100)).length, 100);
    assert.ok((await runs.finishedList(100)).every((r) => r.project === 'busy'));
    db.close();
  });

  test('the hot queries read an index that matches their filter and sort: no temporary sort, no full scan', () => {
    const db = openMasterDb(tempDir('spiderplane-scale-plan-'));
    const plan = (sql: string, ...params: unknown[]) => (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((r) => r.detail).join(' | ');
    // The statements as RunStore prepares them (INDEXED BY where the planner's guess could sort).
    const hot: Array<[string, string, unknown[]]> = [
      ['listjobs finished', `SELECT * FROM runs INDEXED BY runs_ended_list WHERE state IN ('finished', 'lost', 'failed') ORDER BY ended_at DESC, id DESC LIMIT 100`, []],
      ['listjobs finished ?project=', `SELECT * FROM runs INDEXED BY runs_ended_project WHERE state IN ('finished', 'lost', 'failed') AND project = ? ORDER BY ended_at DESC, id DESC LIMIT 100`, ['p']],
      ['listjobs pending', `SELECT * FROM runs INDEXED BY runs_waiting WHERE state IN ('dispatching', 'pending') ORDER BY priority DESC, id`, []],
      ['listjobs running', `SELECT * FROM runs INDEXED BY runs_running WHERE state = 'running' ORDER BY started_at, id`, []],
      ['/api/runs', `SELECT * FROM runs ORDER BY id DESC LIMIT 50 OFFSET 0`, []],
      ['/api/runs?state=', `SELECT * FROM runs WHERE state = ? ORDER BY id DESC LIMIT 50 OFFSET 0`, ['finished']],
      ['/api/runs?project=', `SELECT * FROM runs WHERE project = ? ORDER BY id DESC LIMIT 50 OFFSET 0`, ['p']],
      ['/api/runs?node=', `SELECT * FROM runs WHERE node = ? ORDER BY id DESC LIMIT 50 OFFSET 0`, ['n1']],
      ['counts', `SELECT state, n FROM run_counts WHERE n > 0`, []],
      ['lost of a node', `SELECT * FROM runs WHERE node_id = ? AND state = 'lost' AND ended_at > ? AND outcome = 'lost'`, [1, 0]],
      ['retention', `SELECT id FROM runs INDEXED BY runs_ended_list WHERE state IN ('finished', 'lost', 'failed') AND ended_at < 5 AND (state <> 'lost' OR ended_at < 3) ORDER BY ended_at, id LIMIT 500`, []],
    ];
    // The dashboard's last-24-hours figures read that window through runs_created (a sort of the window's few problem runs is fine).
    for (const sql of [`SELECT COUNT(*) FROM runs INDEXED BY runs_created WHERE created_at >= ?`,
      `SELECT * FROM runs INDEXED BY runs_created WHERE created_at >= ? AND (state IN ('failed', 'lost') OR outcome = 'failed' OR error_count > 0) ORDER BY id DESC LIMIT 8`]) {
      assert.match(plan(sql, 0), /SEARCH runs USING (COVERING )?INDEX runs_created \(created_at>\?\)/);
    }
    // At every start and takeover (RunPolicyStore.releaseInterrupted): the few claimed retries through their own index, not every run.
    const release = plan(`UPDATE runs SET retry_claimed_at = NULL WHERE retry_claimed_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM runs r2 WHERE r2.retry_of = runs.id)`);
    assert.match(release, /^SCAN runs USING (COVERING )?INDEX runs_retry_claimed\b/, release);
    for (const [what, sql, params] of hot) {
      const p = plan(sql, ...params);
      assert.doesNotMatch(p, /TEMP B-TREE/, `${what}: ${p}`);
      if (what !== '/api/runs' && what !== 'counts') assert.doesNotMatch(p, /^SCAN runs$|\| SCAN runs$/, `${what}: ${p}`);
    }
    db.close();
  });
});

describe('master history retention', () => {
  test('by age: ended runs older than the limit go, in batches; active and recently lost runs stay', async () => {
    const db = openMasterDb(tempDir('spiderplane-scale-age-'));
    const runs = new RunStore(new SqliteDb(db));
    const now = Date.now();
    fillRuns(db, { count: 1234, endedAt: (i) => now - 200 * DAY_MS + i }); // old: go
    fillRuns(db, { count: 3, state: () => 'lost', endedAt: () => now - LOST_TAKE_BACK_MS / 2 }); // lost 3.5 days ago: its node may give it back
    fillRuns(db, { count: 5, state: () => 'running' });
    fillRuns(db, { count: 4, state: () => 'pending' });
    fillRuns(db, { count: 20, endedAt: (i) => now - 10 * DAY_MS + i }); // young: stay
    const batches: number[] = [];
    const orig = runs.pruneEndedBefore.bind(runs);
    runs.pruneEndedBefore = async (before, limit, at) => { const n = await orig(before, limit, at); batches.push(n); return n; };
    const retention = new RunRetention(runs, { maxAgeMs: 90 * DAY_MS, maxRuns: 0, batch: 500 });
    assert.equal(await retention.prune(now), 1234);
    assert.deepEqual(batches, [500, 500, 234]);
    assert.deepEqual(await runs.counts(), { finished: 20, lost: 3, running: 5, pending: 4 });
    assert.deepEqual(await runs.counts(), groupCounts(db, 'runs'));
    db.close();
  });

  test('by count: the oldest ended runs go until the cap holds; active runs are never deleted, even over the cap', async () => {
    const db = openMasterDb(tempDir('spiderplane-scale-count-'));
    const runs = new RunStore(new SqliteDb(db));
    const now = Date.now();
    fillRuns(db, { count: 5, state: () => 'running' });
    fillRuns(db, { count: 1000, endedAt: (i) => now - 30 * DAY_MS + i * 1000 });
    const newest = (db.prepare(`SELECT id FROM runs WHERE state = 'finished' ORDER BY ended_at DESC LIMIT 95`).all() as Array<{ id: number }>).map((r) => r.id).sort((x, y) => x - y);
    const retention = new RunRetention(runs, { maxAgeMs: 0, maxRuns: 100, batch: 300 });
    assert.equal(await retention.prune(now), 905);
    assert.equal(await runs.total(), 100);
    assert.equal((await runs.counts()).running, 5);
    const kept = (db.prepare(`SELECT id FROM runs WHERE state = 'finished' ORDER BY id`).all() as Array<{ id: number }>).map((r) => r.id);
    assert.deepEqual(kept, newest, 'the newest ended runs are the ones kept');
    // Only active runs left, more of them than the cap: nothing is deleted.
    const tight = new RunRetention(runs, { maxAgeMs: 0, maxRuns: 3, batch: 300 });
    await tight.prune(now);
    assert.equal((await runs.counts()).running, 5);
    assert.equal(await runs.total(), 5);
    db.close();
  });
});

describe('slave history', () => {
  test('job counts by trigger; the pruner keeps the newest finished jobs, in batches, with their error lines', async () => {
    const dir = tempDir('spiderplane-scale-slave-');
    let db = openSlaveDb(dir);
    let jobs = new JobStore(db);
    const ins = db.prepare(`INSERT INTO jobs (id, project, spider, state, created_at, end_time) VALUES (?, 'p', 's', 'finished', 0, ?)`);
    db.transaction(() => { for (let i = 0; i < 1200; i++) ins.run(`j${i}`, 1000 + i); })();
    const pending = jobs.enqueue({ id: 'waiting', project: 'p', spider: 's', version: null, priority: 0, args: {}, settings: {} });
    const run = jobs.enqueue({ id: 'live', project: 'p', spider: 's', version: null, priority: 0, args: {}, settings: {} });
    jobs.markRunning(run, { start_time: 1, pid: 1, proc_start: null, run_version: null });
    const oldUid = (db.prepare(`SELECT uid FROM jobs WHERE id = 'j0'`).get() as { uid: number }).uid;
    const keptUid = (db.prepare(`SELECT uid FROM jobs WHERE id = 'j1199'`).get() as { uid: number }).uid;
    const err = { job: 'x', project: 'p', spider: 's', time: 't', level: 'ERROR', logger: 'l', message: 'm', traceback: null };
    jobs.replaceErrors(oldUid, [{ ...err, job_uid: oldUid }], 1000);
    jobs.replaceErrors(keptUid, [{ ...err, job_uid: keptUid }], 1000);
    assert.deepEqual(jobs.counts(), { pending: 1, running: 1, finished: 1200 });
    const plan = (db.prepare(`EXPLAIN QUERY PLAN SELECT uid FROM jobs WHERE state = 'finished' ORDER BY end_time LIMIT 500`).all() as Array<{ detail: string }>).map((r) => r.detail).join(' | ');
    assert.match(plan, /USING (COVERING )?INDEX jobs_state \(state=\?\)/, plan);
    assert.doesNotMatch(plan, /TEMP B-TREE/, 'the oldest finished jobs come straight off the index');
    const pruner = new HistoryPruner(jobs, 100, 60_000, 250);
    assert.equal(await pruner.prune(), 1100);
    assert.deepEqual(jobs.counts(), { pending: 1, running: 1, finished: 100 });
    const ids = (db.prepare(`SELECT id FROM jobs WHERE state = 'finished' ORDER BY end_time`).all() as Array<{ id: string }>).map((r) => r.id);
    assert.deepEqual(ids, Array.from({ length: 100 }, (_, i) => `j${1100 + i}`));
    assert.deepEqual((db.prepare(`SELECT job_uid FROM errors`).all() as Array<{ job_uid: number }>).map((r) => r.job_uid), [keptUid], 'error lines go with their job');
    assert.ok(jobs.get(pending) && jobs.get(run), 'pending and running jobs are never pruned');
    db.close();
    db = openSlaveDb(dir);
    jobs = new JobStore(db);
    assert.deepEqual(jobs.counts(), groupCounts(db, 'jobs') as unknown as ReturnType<JobStore['counts']>);
    db.close();
  });
});

describe('metric tiers', () => {
  test('raw -> minute -> hour -> day; each tier expires after its own retention, in batches', async () => {
    const db = openMasterDb(tempDir('spiderplane-scale-metrics-'));
    const sql = new SqliteDb(db);
    const nodes = new NodeRegistry(sql);
    const n = await nodes.add({ name: 'm1', url: 'http://m1.test:6800', username: null, password: null, source: 'added', max_proc: 1 });
    const h = new MetricHistory(sql, 6 * HOUR);
    const now = Math.floor(Date.now() / DAY) * DAY + 2 * HOUR + 30 * MINUTE;
    const start = now - 2 * DAY;
    const ins = db.prepare(`INSERT INTO node_metrics (node_id, time, cpu_percent, load1, mem_percent, disk_max, rx_bps, tx_bps, running, pending) VALUES (?, ?, 20, 1, 50, 70, 100, 200, 1, 0)`);
    db.transaction(() => { for (let t = start; t < now; t += 5000) ins.run(n.id, t); })();
    await h.maintain(now);
    const count = (sql: string, ...p: unknown[]) => (db.prepare(sql).get(...p) as { c: number }).c;
    assert.equal(count(`SELECT COUNT(*) AS c FROM node_metrics WHERE time < ?`, now - 6 * HOUR), 0, 'raw older than its retention is gone');
    assert.equal(count(`SELECT COUNT(*) AS c FROM node_metrics`), 6 * 720);
    assert.equal(count(`SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ?`, MINUTE), 2 * 24 * 60);
    assert.equal(count(`SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ?`, HOUR), 2 * 24, 'the complete hours');
    assert.equal(count(`SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ?`, DAY), 2, 'the complete days (the first one partly filled)');
    const dayStart = Math.floor(now / DAY) * DAY;
    assert.equal(count(`SELECT n AS c FROM metric_rollups WHERE res = ? AND bucket = ?`, DAY, dayStart - DAY), 24 * 720, 'a day holds every raw sample of it');
    const year = await h.nodeSeries(n.id, '1y', now);
    assert.equal(year.step_seconds, 86400);
    assert.deepEqual([year.points.length, year.points[0]!.cpu, year.points[0]!.disk], [2, 20, 70]);
    assert.equal((await h.nodeSeries(n.id, '7d', now)).step_seconds, 3600);
    // Later: the minute tier expires after its retention, the hours and days stay.
    await h.maintain(now + MINUTE_RETENTION_MS + HOUR);
    assert.equal(count(`SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ?`, MINUTE), 0);
    assert.equal(count(`SELECT COUNT(*) AS c FROM node_metrics`), 0);
    assert.equal(count(`SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ?`, HOUR), 2 * 24 + 1, 'plus the last, half-filled hour, rolled once it ended');
    await h.maintain(now + HOUR_RETENTION_MS + HOUR);
    assert.equal(count(`SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ?`, HOUR), 0);
    assert.equal(count(`SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ?`, DAY), 3, 'the days stay (and the last one was rolled once it ended)');
    assert.ok(2 * 24 * 60 > PRUNE_BATCH, 'the minute tier needed more than one batch');
    db.close();
  });

  test('heartbeat samples are written in one batch and carry their fullest disk', async () => {
    const db = openMasterDb(tempDir('spiderplane-scale-samples-'));
    const nodes = new NodeRegistry(new SqliteDb(db));
    const ids: number[] = [];
    for (let i = 0; i < 50; i++) ids.push((await nodes.add({ name: `n${i}`, url: `http://n${i}.test:6800`, username: null, password: null, source: 'added', max_proc: 1 })).id);
    const metrics = {
      time: 0, cpu_percent: 12, cpu_count: 2, load: [1, 1, 1] as [number, number, number], memory: { total_bytes: 1, used_bytes: 1, available_bytes: 0, used_percent: 40 },
      disks: [{ mount: '/', size_bytes: 1, used_bytes: 1, used_percent: 30 }, { mount: '/data', size_bytes: 1, used_bytes: 1, used_percent: 80 }],
      network: { rx_bytes_per_sec: 1, tx_bytes_per_sec: 2 }, uptime_seconds: 1, daemon_uptime_seconds: 1, running: 0, pending: 0, max_proc: 1,
    };
    for (const id of ids) await nodes.recordHeartbeat(id, { now: Date.now(), running: 1, pending: 0, maxProc: 1, metrics });
    assert.equal((db.prepare(`SELECT COUNT(*) AS c FROM node_metrics`).get() as { c: number }).c, 0, 'queued, not one commit per heartbeat');
    const s = await nodes.samples(ids[0]!, 0) as Array<{ disk_max: number }>;
    assert.equal((db.prepare(`SELECT COUNT(*) AS c FROM node_metrics`).get() as { c: number }).c, 50);
    assert.equal(s[0]!.disk_max, 80);
    db.close();
  });
});

describe('host metrics from /proc', () => {
  test('parsers read the kernel formats', () => {
    const a = parseCpuTimes('cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n')!;
    const b = parseCpuTimes('cpu  200 0 100 1600 100 0 0 0 0 0\n')!;
    assert.deepEqual(a, { idle: 850, total: 1000 });
    assert.equal(cpuPercent(a, b), 15);
    assert.deepEqual(parseMeminfo('MemTotal:       1000 kB\nMemFree:  100 kB\nMemAvailable:    250 kB\n'), { total: 1024000, available: 256000 });
    assert.deepEqual(parseNetDev('Inter-|   Receive\n face |bytes\n    lo: 999 1 0 0 0 0 0 0 999 1 0 0 0 0 0 0\n  eth0: 1000 10 0 0 0 0 0 0 500 5 0 0 0 0 0 0\n  eth1: 24 1 0 0 0 0 0 0 12 1 0 0 0 0 0 0\n'), { rx: 1024, tx: 512 });
    assert.deepEqual(parseMounts('/dev/sda1 / ext4 rw 0 0\nproc /proc proc rw 0 0\ntmpfs /run tmpfs rw 0 0\n/dev/sda1 /bind ext4 rw 0 0\n/dev/sdb1 /mnt/my\\040disk xfs rw 0 0\n'),
      [{ device: '/dev/sda1', mount: '/', type: 'ext4' }, { device: '/dev/sdb1', mount: '/mnt/my disk', type: 'xfs' }]);
    assert.deepEqual(diskUsage({ bsize: 1000, blocks: 100, bfree: 30, bavail: 20 }), { size: 100_000, used: 70_000, percent: (70 / 90) * 100 });
  });

  test('sampling spawns no child process and gives CPU, memory, disks and network rates', async () => {
    const m = new SystemMetrics(20);
    // Children of any thread of this process (a spawn forks from whichever thread calls it).
    // Children of any thread of this process (a spawn forks from whichever thread calls it), beyond
    // those already there (tsx's esbuild service).
    const list = () => readdirSync('/proc/self/task').flatMap((t) => readFileSync(`/proc/self/task/${t}/children`, 'utf8').trim().split(' ').filter(Boolean));
    const before = new Set(list());
    const children = () => list().filter((p) => !before.has(p)).join(' ');
    await m.start();
    let seen = '';
    const deadline = Date.now() + 60_000;
    let cur = m.current();
    // Watch for children while it samples every 20 ms, until it has two CPU readings.
    for (let i = 0; (i < 50 || cur.cpu_percent === null) && Date.now() < deadline; i++) {
      seen += children();
      await new Promise((r) => setTimeout(r, 10));
      cur = m.current();
    }
    m.stop();
    assert.equal(seen, '', 'no child process was spawned');
    assert.ok(cur.memory.total_bytes > 0 && cur.memory.used_percent > 0);
    assert.ok(cur.disks.length > 0 && cur.disks.every((d) => d.size_bytes > 0));
    assert.ok(cur.cpu_percent !== null && cur.cpu_percent >= 0 && cur.cpu_percent <= 100);
    assert.notEqual(cur.network.rx_bytes_per_sec, undefined);
  });
});

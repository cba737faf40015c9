// The runs' stores on both engines (issue 12): RunStore, RunPolicyStore, retention and the load
// balancer's accounting give the same answers on SQLite and on PostgreSQL — lists in their order and
// filtered before their limit, counts kept by triggers, claims taken once (also when two callers race
// on separate connections), pruning that spares active and recently lost runs, and least-load
// targeting that spreads a burst evenly, also when two masters share one PostgreSQL.
// Run: npx tsx --test --test-concurrency=1 test/store_runs.test.ts
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openMasterStore } from '../master/store/open_store.ts';
import { isUniqueViolation, type SqlDb } from '../master/store/sql_db.ts';
import { PostgresDb } from '../master/store/postgres_db.ts';
import { LOST_TAKE_BACK_MS, RunStore, type NewRun, type RunRow } from '../master/runs/run_store.ts';
import { RunPolicyStore } from '../master/runs/run_policy_store.ts';
import { RunRetention } from '../master/runs/run_retention.ts';
import { DispatchLoadStore } from '../master/runs/dispatch_load_store.ts';
import { LoadBalancer, type Candidate } from '../master/runs/load_balancer.ts';
import { NO_POLICY } from '../master/runs/run_policy.ts';
import { freshDatabaseUrl } from './helpers/postgres.ts';
import { tempDir } from './helpers/slave_process.ts';

const DAY = 24 * 3600_000;
type Engine = 'sqlite' | 'postgres';

const opened: SqlDb[] = [];
after(async () => { for (const db of opened) await db.close().catch(() => undefined); });

/** A new, empty master database on this engine (and its URL, for a second connection). */
async function open(engine: Engine): Promise<{ db: SqlDb; url: string | null }> {
  if (engine === 'sqlite') {
    const db = await openMasterStore({ kind: 'sqlite', file: join(tempDir('spiderplane-store-runs-'), 'master.db') });
    opened.push(db);
    return { db, url: null };
  }
  const url = await freshDatabaseUrl();
  const db = await openMasterStore({ kind: 'postgres', url });
  opened.push(db);
  return { db, url };
}

let seq = 0;
const newRun = (o: Partial<NewRun> = {}): NewRun => ({
  job: `job${++seq}`, project: 'p', spider: 's', version: '1', args: { a: '1' }, settings: {}, priority: 0, node_id: 1, node: 'n1',
  schedule_id: null, retry_of: null, attempt: 1, retries_left: 0, created_by: 'test', ...o,
});

/** Sets columns the stores only set on their own schedule (times, states), for the test's history. */
async function setRow(db: SqlDb, id: number, cols: Partial<Record<keyof RunRow, string | number | null>>): Promise<void> {
  const keys = Object.keys(cols);
  await db.run(`UPDATE runs SET ${keys.map((k) => `${k} = @${k}`).join(', ')} WHERE id = @id`, { ...cols, id });
}

async function countsByQuery(db: SqlDb): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const r of await db.all<{ state: string; n: number }>(`SELECT state, COUNT(*) AS n FROM runs GROUP BY state`)) out[r.state] = Number(r.n);
  return out;
}

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`runs on ${engine}`, () => {
    test('insert, read back, a job id taken twice is a uniqueness error; counts follow every change', async () => {
      const { db } = await open(engine);
      const runs = new RunStore(db);
      const a = await runs.insert(newRun({ args: { url: 'https://x' }, settings: { S: '1' }, priority: 2.5, service_id: 7 }));
      assert.equal(a.state, 'dispatching');
      assert.deepEqual(JSON.parse(a.args), { url: 'https://x' });
      assert.equal(a.priority, 2.5);
      assert.equal(a.service_id, 7, 'a replica is tagged by its insert');
      assert.equal(a.cancel_requested, 0);
      assert.equal((await runs.byJob(a.job))!.id, a.id);
      assert.equal(await runs.get(a.id + 1000), undefined);
      await assert.rejects(runs.insert(newRun({ job: a.job })), (e) => isUniqueViolation(e));
      const b = await runs.insert(newRun());
      await runs.markDispatched(a.id);
      await runs.markDispatched(a.id); // only from dispatching: the second changes nothing
      const dispatched = (await runs.get(a.id))!;
      assert.equal(dispatched.state, 'pending');
      assert.ok(dispatched.dispatched_at !== null);
      await runs.update(dispatched, { state: 'running', started_at: Date.now() });
      await runs.update(b, { state: 'finished', outcome: 'cancelled', ended_at: Date.now() });
      assert.deepEqual(await runs.counts(), { running: 1, finished: 1 });
      assert.deepEqual(await runs.counts(), await countsByQuery(db));
      assert.equal(await runs.total(), 2);
      await runs.markCancelRequested(a.id);
      assert.equal((await runs.get(a.id))!.cancel_requested, 1);
      assert.deepEqual(await runs.jobsOf([a.id, b.id, a.id, 99_999]), new Map([[a.id, a.job], [b.id, b.job]]));
      assert.deepEqual(await runs.jobsOf([]), new Map());
    });

    test('query: newest first, every filter, exact totals from the counts or counted', async () => {
      const { db } = await open(engine);
      const runs = new RunStore(db);
      const rows: RunRow[] = [];
      for (let i = 0; i < 12; i++) {
        rows.push(await runs.insert(newRun({ project: i % 2 ? 'odd' : 'even', spider: i % 3 ? 's' : 't', node_id: i % 4 === 0 ? 2 : 1, node: i % 4 === 0 ? 'n2' : 'n1', schedule_id: i < 3 ? 5 : null })));
      }
      for (const r of rows.slice(0, 4)) await runs.update(r, { state: 'finished', outcome: 'finished', ended_at: Date.now() });
      await setRow(db, rows[11]!.id, { created_at: Date.now() + 60_000 });
      const all = await runs.query({ limit: 5, offset: 0 });
      assert.deepEqual(all.runs.map((r) => r.id), rows.slice(7).reverse().map((r) => r.id));
      assert.deepEqual([all.total, all.total_exact], [12, true]);
      const page2 = await runs.query({ limit: 5, offset: 5 });
      assert.deepEqual(page2.runs.map((r) => r.id), rows.slice(2, 7).reverse().map((r) => r.id));
      assert.equal((await runs.query({ state: 'active', limit: 100, offset: 0 })).total, 8);
      assert.equal((await runs.query({ state: 'finished', limit: 100, offset: 0 })).runs.length, 4);
      const odd = await runs.query({ project: 'odd', limit: 100, offset: 0 });
      assert.ok(odd.runs.every((r) => r.project === 'odd'));
      assert.deepEqual([odd.runs.length, odd.total, odd.total_exact], [6, 6, true]);
      assert.equal((await runs.query({ node: 'n2', limit: 100, offset: 0 })).total, 3);
      assert.equal((await runs.query({ spider: 't', project: 'even', limit: 100, offset: 0 })).total, 2);
      assert.deepEqual((await runs.query({ schedule_id: 5, limit: 100, offset: 0 })).runs.map((r) => r.id), rows.slice(0, 3).reverse().map((r) => r.id));
      assert.deepEqual((await runs.query({ since: Date.now() + 30_000, limit: 100, offset: 0 })).runs.map((r) => r.id), [rows[11]!.id]);
      const none = await runs.query({ project: 'odd', limit: 0, offset: 0 });
      assert.deepEqual([none.runs.length, none.total], [0, 6]);
    });

    test("Scrapyd's lists: pending by priority, running by start, finished newest first and filtered before the limit", async () => {
      const { db } = await open(engine);
      const runs = new RunStore(db);
      const now = Date.now();
      const low = await runs.insert(newRun({ priority: 0 }));
      const high = await runs.insert(newRun({ priority: 5, project: 'q' }));
      await runs.markDispatched(low.id);
      const later = await runs.insert(newRun());
      const earlier = await runs.insert(newRun({ project: 'q' }));
      await runs.update(later, { state: 'running', started_at: now - 1000 });
      await runs.update(earlier, { state: 'running', started_at: now - 5000 });
      const ended: RunRow[] = [];
      for (let i = 0; i < 6; i++) {
        const r = await runs.insert(newRun({ project: i < 2 ? 'quiet' : 'busy' }));
        ended.push(await runs.update(r, { state: i === 5 ? 'lost' : 'finished', outcome: 'finished', ended_at: now - (10 - i) * 1000 }));
      }
      assert.deepEqual((await runs.pendingList()).map((r) => r.id), [high.id, low.id]);
      assert.deepEqual((await runs.pendingList('q')).map((r) => r.id), [high.id]);
      assert.deepEqual((await runs.runningList()).map((r) => r.id), [earlier.id, later.id]);
      assert.deepEqual((await runs.finishedList(3)).map((r) => r.id), [ended[5]!.id, ended[4]!.id, ended[3]!.id]);
      assert.deepEqual((await runs.finishedList(3, 'quiet')).map((r) => r.id), [ended[1]!.id, ended[0]!.id]);
      assert.deepEqual((await runs.active()).map((r) => r.id), [low.id, high.id, later.id, earlier.id]);
      assert.deepEqual((await runs.activeOfNode(1)).map((r) => r.id).sort((a, b) => a - b), [low.id, high.id, later.id, earlier.id]);
      assert.deepEqual(await runs.activeOfNode(2), []);
    });

    test('dashboard figures: the day summary by state and outcome, recent problems newest first', async () => {
      const { db } = await open(engine);
      const runs = new RunStore(db);
      const now = Date.now();
      const end = async (o: Partial<RunRow>) => runs.update(await runs.insert(newRun()), { ended_at: now, ...o });
      await end({ state: 'finished', outcome: 'succeeded' });
      await end({ state: 'finished', outcome: 'finished_with_errors', error_count: 3 });
      await end({ state: 'finished', outcome: 'timeout' });
      await end({ state: 'failed', outcome: 'failed' });
      await end({ state: 'lost', outcome: 'lost' });
      await end({ state: 'finished', outcome: 'cancelled' });
      const old = await end({ state: 'failed', outcome: 'failed' });
      await setRow(db, old.id, { created_at: now - 2 * DAY });
      await runs.insert(newRun()); // still active
      assert.deepEqual(await runs.summarySince(now - DAY), { finished: 2, failed: 2, lost: 1, cancelled: 1 });
      assert.deepEqual(await runs.summarySince(now + DAY), { finished: 0, failed: 0, lost: 0, cancelled: 0 });
      const problems = await runs.recentProblems(now - DAY, 10);
      assert.deepEqual(problems.map((r) => r.outcome), ['lost', 'failed', 'timeout', 'finished_with_errors']);
      assert.equal((await runs.recentProblems(now - DAY, 2)).length, 2);
    });

    test('failover facts: lost runs of a node and whether each was re-run; successors; a schedule\'s runs', async () => {
      const { db } = await open(engine);
      const runs = new RunStore(db);
      const now = Date.now();
      const lostA = await runs.update(await runs.insert(newRun({ node_id: 3, schedule_id: 9 })), { state: 'lost', outcome: 'lost', ended_at: now });
      const lostB = await runs.update(await runs.insert(newRun({ node_id: 3 })), { state: 'lost', outcome: 'lost', ended_at: now });
      const lostLongAgo = await runs.update(await runs.insert(newRun({ node_id: 3 })), { state: 'lost', outcome: 'lost', ended_at: now - 10 * DAY });
      const copy = await runs.insert(newRun({ node_id: 4, retry_of: lostA.id, attempt: 2, schedule_id: 9 }));
      const copy2 = await runs.insert(newRun({ node_id: 5, retry_of: lostA.id, attempt: 2 }));
      const lost = await runs.lostOfNode(3, now - DAY);
      assert.deepEqual(lost.map((r) => [r.id, Number(r.has_successor)]).sort((a, b) => a[0]! - b[0]!), [[lostA.id, 1], [lostB.id, 0]]);
      assert.ok(!lost.some((r) => r.id === lostLongAgo.id));
      assert.deepEqual((await runs.successorsOf(lostA.id)).map((r) => r.id), [copy.id, copy2.id]);
      assert.deepEqual(await runs.successorsOf(lostB.id), []);
      assert.deepEqual((await runs.ofScheduleSince(9, now - 1000)).map((r) => r.id), [lostA.id, copy.id]);
      assert.deepEqual(await runs.ofScheduleSince(9, now + DAY), []);
      assert.equal(await runs.scheduleHasActive(9), true, 'the copy is still dispatching');
      await runs.update(copy, { state: 'finished', outcome: 'finished', ended_at: now });
      assert.equal(await runs.scheduleHasActive(9), false);
    });

    test('service replicas: active ones, and the ended ones of a service newest first', async () => {
      const { db } = await open(engine);
      const runs = new RunStore(db);
      const now = Date.now();
      const live = await runs.insert(newRun({ service_id: 1 }));
      await runs.insert(newRun()); // not a replica
      const e1 = await runs.update(await runs.insert(newRun({ service_id: 1 })), { state: 'finished', outcome: 'failed', ended_at: now - 5000 });
      const e2 = await runs.update(await runs.insert(newRun({ service_id: 1 })), { state: 'lost', outcome: 'lost', ended_at: now - 1000 });
      await runs.update(await runs.insert(newRun({ service_id: 2 })), { state: 'finished', outcome: 'failed', ended_at: now });
      assert.deepEqual((await runs.activeReplicas()).map((r) => r.id), [live.id]);
      assert.deepEqual((await runs.endedReplicasSince(1, now - 60_000)).map((r) => r.id), [e2.id, e1.id]);
      assert.deepEqual((await runs.endedReplicasSince(1, now - 2000)).map((r) => r.id), [e2.id]);
    });

    test('alert checks: ended runs not looked at yet; a mark taken twice is one mark', async () => {
      const { db } = await open(engine);
      const runs = new RunStore(db);
      const now = Date.now();
      const a = await runs.update(await runs.insert(newRun()), { state: 'finished', outcome: 'finished', ended_at: now - 2000 });
      const b = await runs.update(await runs.insert(newRun()), { state: 'lost', outcome: 'lost', ended_at: now - 1000 });
      await runs.insert(newRun()); // active: never listed
      assert.deepEqual((await runs.endedUnchecked(now - DAY)).map((r) => r.id), [a.id, b.id]);
      await runs.markAlertChecked(a.id, now);
      await runs.markAlertChecked(a.id, now);
      assert.deepEqual((await runs.endedUnchecked(now - DAY)).map((r) => r.id), [b.id]);
      // Marks older than 3 days are dropped by the next mark.
      await runs.markAlertChecked(b.id, now + 4 * DAY);
      assert.deepEqual((await runs.endedUnchecked(now - DAY)).map((r) => r.id), [a.id]);
    });

    test('retention: by age and by count, in batches, never an active run nor one lost lately', async () => {
      const { db } = await open(engine);
      const runs = new RunStore(db);
      const now = Date.now();
      const ids = async (): Promise<number[]> => (await db.all<{ id: number }>(`SELECT id FROM runs ORDER BY id`)).map((r) => Number(r.id));
      const old: number[] = [];
      for (let i = 0; i < 7; i++) old.push((await runs.update(await runs.insert(newRun()), { state: 'finished', outcome: 'finished', ended_at: now - 100 * DAY + i })).id);
      const lostLately = (await runs.update(await runs.insert(newRun()), { state: 'lost', outcome: 'lost', ended_at: now - 100 * DAY })).id;
      await setRow(db, lostLately, { ended_at: now - LOST_TAKE_BACK_MS / 2 });
      const active = (await runs.insert(newRun())).id;
      const young: number[] = [];
      for (let i = 0; i < 3; i++) young.push((await runs.update(await runs.insert(newRun()), { state: 'failed', outcome: 'failed', ended_at: now - DAY + i })).id);
      assert.equal(await runs.pruneEndedBefore(now - 90 * DAY, 3, now), 3, 'a batch at most');
      assert.deepEqual(await ids(), [...old.slice(3), lostLately, active, ...young], 'the oldest went first');
      const byAge = new RunRetention(runs, { maxAgeMs: 90 * DAY, maxRuns: 0, batch: 2 });
      assert.equal(await byAge.prune(now), 4);
      assert.deepEqual(await ids(), [lostLately, active, ...young]);
      const byCount = new RunRetention(runs, { maxAgeMs: 0, maxRuns: 3, batch: 1 });
      assert.equal(await byCount.prune(now), 2);
      assert.deepEqual(await ids(), [lostLately, active, young[2]!]);
      // Over the cap with nothing prunable left: nothing more goes.
      assert.equal(await new RunRetention(runs, { maxAgeMs: 0, maxRuns: 1, batch: 10 }).prune(now), 1);
      assert.deepEqual(await ids(), [lostLately, active]);
      assert.equal(await runs.pruneOldestEnded(10, now), 0);
      assert.deepEqual(await runs.counts(), await countsByQuery(db));
    });

    test('retry policy: planned, due, claimed once (also by racing callers), released, dropped, unplanned', async () => {
      const { db, url } = await open(engine);
      const runs = new RunStore(db);
      const policies = new RunPolicyStore(db);
      const now = Date.now();
      const failed = await runs.insert(newRun());
      await policies.setPolicy(failed.id, { ...NO_POLICY, max_runtime: 30, retries: 2, retry_delay: 1.5, keep_running: true }, 0);
      await policies.setLimitHit(failed.id, { kind: 'timeout', limit: 30, reached: 31, unit: 's' });
      const withPolicy = (await runs.get(failed.id))!;
      assert.deepEqual([withPolicy.max_runtime, withPolicy.retries, withPolicy.retry_delay, withPolicy.retry_number], [30, 2, 1.5, 0]);
      assert.equal((withPolicy as RunRow & { keep_running: number }).keep_running, 1);
      assert.deepEqual(JSON.parse(withPolicy.limit_hit!), { kind: 'timeout', limit: 30, reached: 31, unit: 's' });
      await runs.update(withPolicy, { state: 'finished', outcome: 'failed', ended_at: now });
      assert.deepEqual((await policies.unplanned(now - DAY)).map((r) => r.id), [failed.id], 'failed with a retry left and none planned');
      await policies.planRetry(failed.id, now + 1000.4);
      assert.deepEqual(await policies.unplanned(now - DAY), []);
      assert.deepEqual(await policies.due(now), []);
      assert.deepEqual((await policies.due(now + 2000)).map((r) => r.id), [failed.id]);
      // Two callers race for the claim (on PostgreSQL, from two connections: two masters).
      const other = url ? PostgresDb.connect(url) : null;
      if (other) opened.push(other);
      const rival = new RunPolicyStore(other ?? db);
      const claims = await Promise.all([policies.claim(failed.id, now), rival.claim(failed.id, now), policies.claim(failed.id, now), rival.claim(failed.id, now)]);
      assert.equal(claims.filter(Boolean).length, 1, JSON.stringify(claims));
      assert.deepEqual(await policies.due(now + 2000), [], 'a claimed retry is not due any more');
      assert.equal(await policies.dropRetry(failed.id), false, 'a claimed retry is not dropped');
      // The claimer stopped before creating the retry: released at the next start.
      assert.equal(await policies.releaseInterrupted(), 1);
      assert.equal(await policies.claim(failed.id, now), true);
      const retry = await runs.insert(newRun({ retry_of: failed.id, attempt: 2 }));
      assert.equal(await policies.releaseInterrupted(), 0, 'a claim that became a retry run stays');
      assert.equal((await policies.successorOf(failed.id))!.id, retry.id);
      assert.equal((await policies.rootOf(retry, (id) => runs.get(id))).id, failed.id);
      // A planned retry is dropped once by a cancel.
      const second = await runs.update(await runs.insert(newRun()), { state: 'finished', outcome: 'failed', ended_at: now });
      await policies.planRetry(second.id, now);
      assert.equal(await policies.dropRetry(second.id), true);
      assert.equal(await policies.dropRetry(second.id), false);
      // A cancelled run's retry is never due.
      const third = await runs.update(await runs.insert(newRun()), { state: 'finished', outcome: 'failed', ended_at: now });
      await policies.planRetry(third.id, now);
      await runs.markCancelRequested(third.id);
      assert.deepEqual(await policies.due(now + 1), []);
    });

    test('load accounting: dispatches since the last heartbeat and recent ones, per node, from the runs', async () => {
      const { db } = await open(engine);
      const runs = new RunStore(db);
      const load = new DispatchLoadStore(db);
      const now = Date.now();
      const at = async (nodeId: number, createdAt: number) => setRow(db, (await runs.insert(newRun({ node_id: nodeId }))).id, { created_at: createdAt });
      await at(1, now - 90_000);
      await at(1, now - 30_000);
      await at(1, now - 1000);
      await at(2, now - 1000);
      await at(3, now - 10 * 60_000); // outside the window
      let c = await load.counts([1, 2, 3, 4], now, 60_000, 120_000);
      assert.deepEqual(Object.fromEntries(c), {
        1: { sinceHeartbeat: 3, recent: 2 }, 2: { sinceHeartbeat: 1, recent: 1 }, 3: { sinceHeartbeat: 0, recent: 0 }, 4: { sinceHeartbeat: 0, recent: 0 },
      });
      await load.heartbeat(1, now - 20_000);
      await load.heartbeat(1, now - 50_000); // an older heartbeat's answer, late: changes nothing
      c = await load.counts([1, 2], now, 60_000, 120_000);
      assert.deepEqual(c.get(1), { sinceHeartbeat: 1, recent: 2 });
      await load.heartbeat(1, now - 1000);
      assert.deepEqual((await load.counts([1], now, 60_000, 120_000)).get(1), { sinceHeartbeat: 1, recent: 2 }, 'a dispatch at the request time still counts');
      await load.heartbeat(1, now - 999);
      assert.deepEqual((await load.counts([1], now, 60_000, 120_000)).get(1), { sinceHeartbeat: 0, recent: 2 });
      await load.forget(1);
      assert.deepEqual((await load.counts([1], now, 60_000, 120_000)).get(1), { sinceHeartbeat: 3, recent: 2 });
      assert.deepEqual(await load.counts([], now, 60_000, 120_000), new Map());
    });

    test('least load: a burst of 30 concurrent choices spreads 10/10/10; a busy node gets fewer; ties by name', async () => {
      const { db, url } = await open(engine);
      // On PostgreSQL, two masters share the database: each its own pool, half the burst each.
      const second = url ? PostgresDb.connect(url) : null;
      if (second) opened.push(second);
      const masters = [db, second ?? db].map((d) => ({ runs: new RunStore(d), balancer: new LoadBalancer(new DispatchLoadStore(d)) }));
      const nodes: Candidate[] = [1, 2, 3].map((id) => ({ id, name: `n${id}`, running: 0, pending: 0, capacity: 4 }));
      const dispatch = async (k: number, pool: Candidate[]) => {
        const m = masters[k % 2]!;
        return m.balancer.choosing(async () => {
          const [c] = await m.balancer.pick(pool, 1);
          await m.runs.insert(newRun({ node_id: c!.id, node: c!.name }));
          return c!.name;
        });
      };
      const spread = (names: string[]) => names.reduce<Record<string, number>>((a, n) => ({ ...a, [n]: (a[n] ?? 0) + 1 }), {});
      assert.deepEqual(await dispatch(0, nodes), 'n1', 'equal loads: the first by name');
      const burst = await Promise.all(Array.from({ length: 29 }, (_, k) => dispatch(k, nodes)));
      assert.deepEqual(spread(['n1', ...burst]), { n1: 10, n2: 10, n3: 10 });
      // Every node's heartbeat now counts those runs; n1 reports 6 running.
      for (const n of nodes) await masters[0]!.balancer.recordHeartbeat(n.id, Date.now() + 1);
      const busy = nodes.map((n) => (n.id === 1 ? { ...n, running: 6 } : n));
      const twelve = spread(await Promise.all(Array.from({ length: 12 }, (_, k) => dispatch(k, busy))));
      assert.ok((twelve.n1 ?? 0) < (twelve.n2 ?? 0) && (twelve.n1 ?? 0) < (twelve.n3 ?? 0), JSON.stringify(twelve));
      assert.equal((twelve.n1 ?? 0) + (twelve.n2 ?? 0) + (twelve.n3 ?? 0), 12);
      // A choice that throws inserts nothing.
      const before = await masters[0]!.runs.total();
      await assert.rejects(masters[0]!.balancer.choosing(async () => {
        await masters[0]!.runs.insert(newRun());
        throw new Error('refused');
      }), /refused/);
      assert.equal(await masters[0]!.runs.total(), before);
    });
  });
}

// The stores of nodes, metrics, settings and packages, the same cases on SQLite and on a real
// PostgreSQL (a throwaway cluster: test/helpers/postgres.ts): the node registry and its status
// history, heartbeats and their batched metric samples, each node's job listing (written only
// when it changed, readable by every master), roll-ups and expiry per tier, settings, versions and
// their tombstones, deployments.
// Run: npx tsx --test --test-concurrency=1 test/store_nodes.test.ts
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import AdmZip from 'adm-zip';
import { join } from 'node:path';
import { openMasterStore } from '../master/store/open_store.ts';
import { isUniqueViolation, type SqlDb } from '../master/store/sql_db.ts';
import { NodeRegistry, type NodeRow } from '../master/nodes/node_registry.ts';
import { NodeJobsCache, factsKey } from '../master/nodes/node_jobs_cache.ts';
import { NodeClient } from '../master/nodes/node_client.ts';
import { MetricHistory, MINUTE, HOUR, DAY, MINUTE_RETENTION_MS, HOUR_RETENTION_MS, PRUNE_BATCH } from '../master/metrics/metric_history.ts';
import { SettingsStore } from '../master/settings_store.ts';
import { PackageRepo } from '../master/packages/package_repo.ts';
import { Deployer } from '../master/packages/deployer.ts';
import type { NodeMetrics } from '../common/types.ts';
import type { ListJobsResponse } from '../common/http/scrapyd_responses.ts';
import { buildNodePackage, NODE_SPIDERS } from './helpers/fixtures.ts';
import { freshDatabaseUrl } from './helpers/postgres.ts';
import { tempDir } from './helpers/slave_process.ts';

const metrics = (cpu: number | null, disks: number[]): NodeMetrics => ({
  time: 0, cpu_percent: cpu, cpu_count: 2, load: [1, 1, 1], memory: { total_bytes: 1, used_bytes: 1, available_bytes: 0, used_percent: 40 },
  disks: disks.map((p, i) => ({ mount: `/d${i}`, size_bytes: 1, used_bytes: 1, used_percent: p })),
  network: { rx_bytes_per_sec: 100, tx_bytes_per_sec: 200 }, uptime_seconds: 1, daemon_uptime_seconds: 1, running: 0, pending: 0, max_proc: 1,
});

const newNode = (name: string) => ({ name, url: `http://${name}.test:6800`, username: null, password: null, source: 'added' as const, max_proc: 2 });

const count = async (db: SqlDb, sql: string, params: Array<string | number> = []) => (await db.get<{ c: number }>(sql, params))!.c;

const listing = (running: Array<[string, number]>, finished: string[]): ListJobsResponse => ({
  pending: [],
  running: running.map(([id, pid]) => ({ id, project: 'p', spider: 's', pid, start_time: null, log_url: `/logs/p/s/${id}.log`, items_url: null })),
  finished: finished.map((id) => ({ id, project: 'p', spider: 's', start_time: null, end_time: null, log_url: `/logs/p/s/${id}.log`, items_url: `/items/p/s/${id}.jl` })),
});

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`node, metric, settings and package stores on ${engine}`, () => {
    let db: SqlDb;
    const dir = tempDir(`spiderplane-store-nodes-${engine}-`);

    before(async () => {
      db = await openMasterStore(engine === 'sqlite' ? { kind: 'sqlite', file: join(dir, 'master.db') } : { kind: 'postgres', url: await freshDatabaseUrl() });
    });
    after(async () => { await db.close(); });

    test('registry: add, look-ups, order, uniqueness, labels, draining, status history', async () => {
      const nodes = new NodeRegistry(db);
      const b = await nodes.add(newNode('reg-b'));
      const a = await nodes.add({ ...newNode('reg-a'), source: 'announced' });
      assert.equal(b.status, 'unknown');
      assert.equal((await nodes.byName('reg-a'))!.id, a.id);
      assert.equal((await nodes.byUrl('http://reg-b.test:6800'))!.id, b.id);
      assert.equal(await nodes.byName('nope'), undefined);
      assert.deepEqual((await nodes.all()).filter((n) => n.name.startsWith('reg-')).map((n) => n.name), ['reg-a', 'reg-b'], 'by name');
      await assert.rejects(nodes.add({ ...newNode('reg-a'), url: 'http://other.test:6800' }), (e) => isUniqueViolation(e));
      await assert.rejects(nodes.add({ ...newNode('reg-c'), url: 'http://reg-b.test:6800' }), (e) => isUniqueViolation(e));
      assert.equal(await nodes.byName('reg-c'), undefined, 'the refused node left no row');
      await nodes.setLabels(a.id, { region: 'eu' });
      await nodes.setDraining(a.id, true);
      await nodes.updateAnnounce(a.id, 'http://reg-a2.test:6800', null);
      const a2 = (await nodes.byId(a.id))!;
      assert.deepEqual([a2.labels, a2.draining, a2.url, a2.max_proc], ['{"region":"eu"}', 1, 'http://reg-a2.test:6800', 2], 'a null max_proc keeps the old one');
      await nodes.setStatus(a2, 'online', 'first heartbeat', 1000);
      await nodes.setStatus(a2, 'offline', 'silent', 2000);
      const after = (await nodes.byId(a.id))!;
      assert.deepEqual([after.status, after.status_since], ['offline', 2000]);
      const events = await nodes.events(a.id);
      assert.deepEqual(events.map((e) => [e.status, e.reason]), [['unknown', 'announced itself'], ['offline', 'silent'], ['online', 'first heartbeat']], 'newest first');
      assert.equal((await nodes.events(a.id, 1)).length, 1);
      await nodes.remove(b.id);
      assert.equal(await nodes.byId(b.id), undefined);
    });

    test('heartbeats: the row as it stands, failures counted from the first, samples written in one flush', async () => {
      const nodes = new NodeRegistry(db);
      const ids: number[] = [];
      for (let i = 0; i < 123; i++) ids.push((await nodes.add(newNode(`hb-${i}`))).id);
      await nodes.recordFailure(ids[0]!, 'refused', 5000);
      await nodes.recordFailure(ids[0]!, 'refused again', 6000);
      let row = (await nodes.byId(ids[0]!))!;
      assert.deepEqual([row.last_error, row.failing_since], ['refused again', 5000], 'failing since the first failure');
      const before = await count(db, `SELECT COUNT(*) AS c FROM node_metrics`);
      const now = Date.now();
      for (const [i, id] of ids.entries()) {
        const fresh = await nodes.recordHeartbeat(id, { now: now + i, running: 1, pending: 2, maxProc: 4, metrics: metrics(i === 1 ? null : 12, [30, 80]) });
        assert.ok(fresh && fresh.last_ok_at === now + i && fresh.running === 1 && fresh.pending === 2 && fresh.max_proc === 4 && fresh.extensions === 1);
      }
      row = (await nodes.byId(ids[0]!))!;
      assert.deepEqual([row.last_error, row.failing_since], [null, null], 'a good heartbeat clears the failure');
      assert.equal(await count(db, `SELECT COUNT(*) AS c FROM node_metrics`), before, 'queued, not one commit per heartbeat');
      const s = await nodes.samples(ids[0]!, 0) as Array<{ disk_max: number; cpu_percent: number; running: number }>;
      assert.equal(await count(db, `SELECT COUNT(*) AS c FROM node_metrics`), before + 123, 'a read flushes every queued sample (chunks and the rest)');
      assert.deepEqual([s.length, s[0]!.disk_max, s[0]!.cpu_percent, s[0]!.running], [1, 80, 12, 1]);
      assert.equal(((await nodes.samples(ids[1]!, 0))[0] as { cpu_percent: number | null }).cpu_percent, null);
      // A sample written before disk_max existed: its fullest disk comes from its JSON.
      await db.run(`INSERT INTO node_metrics (node_id, time, cpu_percent, load1, mem_percent, disk, rx_bps, tx_bps, running, pending) VALUES (?, ?, 1, 1, 1, ?, 1, 1, 0, 0)`,
        [ids[2]!, 1, JSON.stringify([{ mount: '/', used_percent: 55.5 }, { mount: '/x', used_percent: 12 }])]);
      assert.equal(((await nodes.samples(ids[2]!, 0))[0] as { disk_max: number }).disk_max, 55.5);
      await nodes.remove(ids[3]!);
      assert.equal(await nodes.recordHeartbeat(ids[3]!, { now, running: 0, pending: 0, maxProc: null, metrics: null }), undefined, 'a removed node');
      await nodes.recordFailure(ids[3]!, 'x'); // a no-op
      await nodes.flushSamples();
    });

    test("each node's job listing: written when it changed, nothing when it did not, readable by another master", async () => {
      const nodes = new NodeRegistry(db);
      const n1 = await nodes.add(newNode('jobs-1'));
      const n2 = await nodes.add(newNode('jobs-2'));
      const leader = new NodeJobsCache(db);
      leader.record(n1.id, listing([['r1', 11], ['r2', 12]], ['f1']));
      leader.record(n2.id, listing([['r1', 21]], []));
      await leader.flush();
      const other = new NodeJobsCache(db); // another master's facade: it never heard a heartbeat
      const runs = [{ node_id: n1.id, job: 'r1' }, { node_id: n1.id, job: 'f1' }, { node_id: n2.id, job: 'r1' }, { node_id: null, job: 'r2' }, { node_id: n1.id, job: 'gone' }];
      let facts = await other.factsOf(runs);
      assert.deepEqual(facts.get(factsKey(n1.id, 'r1')), { pid: 11, logUrl: '/logs/p/s/r1.log', itemsUrl: null });
      assert.deepEqual(facts.get(factsKey(n1.id, 'f1')), { pid: null, logUrl: '/logs/p/s/f1.log', itemsUrl: '/items/p/s/f1.jl' });
      assert.equal(facts.get(factsKey(n2.id, 'r1'))!.pid, 21, 'the same job id on two nodes');
      assert.equal(facts.get(factsKey(n1.id, 'gone')), undefined);
      assert.equal(await other.get(null, 'r2'), undefined);
      // The same listing again writes nothing: rows removed behind its back stay removed.
      await db.run(`DELETE FROM node_jobs WHERE node_id = ? AND job = ?`, [n1.id, 'r2']);
      leader.record(n1.id, listing([['r1', 11], ['r2', 12]], ['f1']));
      await leader.flush();
      assert.equal(await other.get(n1.id, 'r2'), undefined, 'an unchanged listing was not written again');
      // What changed is written: r1 finished, f1 left the list, r3 started.
      leader.record(n1.id, listing([['r2', 12], ['r3', 13]], ['r1']));
      await leader.flush();
      facts = await other.factsOf([{ node_id: n1.id, job: 'r1' }, { node_id: n1.id, job: 'f1' }, { node_id: n1.id, job: 'r3' }]);
      assert.deepEqual([facts.get(factsKey(n1.id, 'r1'))?.pid, facts.get(factsKey(n1.id, 'r1'))?.itemsUrl, facts.has(factsKey(n1.id, 'f1')), facts.get(factsKey(n1.id, 'r3'))?.pid],
        [null, '/items/p/s/r1.jl', false, 13]);
      // Two heartbeats between flushes: the last listing wins, each job written once.
      leader.record(n1.id, listing([['r2', 12], ['r3', 14]], ['r1']));
      leader.record(n1.id, listing([['r2', 12], ['r3', 15]], ['r1']));
      await leader.flush();
      assert.equal((await other.get(n1.id, 'r3'))!.pid, 15);
      // A long listing goes in several statements (and transactions) and comes back whole.
      const big = new NodeJobsCache(db);
      big.record(n2.id, listing([], Array.from({ length: 2345 }, (_, i) => `b${i}`)));
      await big.flush();
      assert.equal(await count(db, `SELECT COUNT(*) AS c FROM node_jobs WHERE node_id = ?`, [n2.id]), 2345);
      // A master that takes over writes each node's listing whole once.
      const next = new NodeJobsCache(db);
      next.record(n1.id, listing([['r2', 12]], []));
      await next.flush();
      assert.deepEqual((await db.all<{ job: string }>(`SELECT job FROM node_jobs WHERE node_id = ? ORDER BY job`, [n1.id])).map((r) => r.job), ['r2']);
      // A removed node's rows go with it; a listing that arrives after the removal is dropped.
      next.record(n2.id, listing([['r9', 9]], []));
      await nodes.remove(n2.id);
      await next.flush();
      assert.equal(await count(db, `SELECT COUNT(*) AS c FROM node_jobs WHERE node_id = ?`, [n2.id]), 0);
      await next.forget(n1.id);
      assert.equal(await count(db, `SELECT COUNT(*) AS c FROM node_jobs WHERE node_id = ?`, [n1.id]), 0);
    });

    test('roll-ups: minutes, hours, days from the tier below, idempotent; charts read the right tier', async () => {
      const nodes = new NodeRegistry(db);
      const n = await nodes.add(newNode('roll-1'));
      const quiet = await nodes.add(newNode('roll-2'));
      const h = new MetricHistory(db, 48 * HOUR);
      const now = Math.floor(Date.now() / DAY) * DAY - 2 * DAY + 2 * HOUR + 30 * MINUTE; // 2 days ago, so no other test's sample is in range
      const start = now - 3 * HOUR;
      await db.tx(async () => {
        for (let t = start; t < now; t += 5000) {
          await db.run(`INSERT INTO node_metrics (node_id, time, cpu_percent, load1, mem_percent, disk_max, rx_bps, tx_bps, running, pending) VALUES (?, ?, ?, 1, 50, 70, 100, 200, 1, 0)`,
            [n.id, t, (t / 5000) % 2 ? 10 : 30]);
          // A node that reports no CPU: its averages are NULL, not a division by zero.
          await db.run(`INSERT INTO node_metrics (node_id, time, cpu_percent, load1, mem_percent, disk_max, rx_bps, tx_bps, running, pending) VALUES (?, ?, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0)`, [quiet.id, t]);
        }
      });
      await h.rollup(now);
      const rollups = (res: number, id: number) => count(db, `SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ? AND node_id = ?`, [res, id]);
      assert.equal(await rollups(MINUTE, n.id), 180);
      assert.equal(await rollups(HOUR, n.id), 3, 'the complete hours');
      await h.rollup(now); // nothing new completed
      await new MetricHistory(db, 48 * HOUR).rollup(now); // a restart redoes the last bucket of each tier
      assert.equal(await count(db, `SELECT SUM(n) AS c FROM metric_rollups WHERE res = ? AND node_id = ?`, [MINUTE, n.id]), 3 * 720, 'nothing counted twice');
      assert.equal(await count(db, `SELECT SUM(n) AS c FROM metric_rollups WHERE res = ? AND node_id = ?`, [HOUR, n.id]), 720 / 2 + 2 * 720, 'the first hour is half filled; the last, not complete, waits');
      const q = (await db.get<{ cpu_avg: number | null; running_avg: number }>(`SELECT cpu_avg, running_avg FROM metric_rollups WHERE res = ? AND node_id = ? ORDER BY bucket LIMIT 1`, [HOUR, quiet.id]))!;
      assert.deepEqual([q.cpu_avg, q.running_avg], [null, 0]);
      const day = await h.nodeSeries(n.id, '24h', now);
      assert.equal(day.step_seconds, 60);
      assert.equal(day.points.length, 180);
      assert.deepEqual([day.points[0]!.cpu, day.points[0]!.cpu_max, day.points[0]!.disk, day.points[0]!.rx, day.points[0]!.running], [20, 30, 70, 100, 1]);
      const month = await h.nodeSeries(n.id, '30d', now);
      assert.deepEqual([month.step_seconds, month.points.length, month.points[0]!.cpu], [3600, 3, 20]);
      const raw = await h.nodeSeries(n.id, '1h', now);
      assert.deepEqual([raw.step_seconds, raw.points.length, raw.points[0]!.disk], [0, 720, 70]);
      const cluster = await h.clusterSeries('24h', now);
      const first = cluster.points.find((p) => p.t === start)!;
      assert.deepEqual([first.nodes, first.cpu, first.rx, first.running], [2, 20, 100, 1], 'the average node, network and running summed');
      // A day is rolled once it has ended.
      await new MetricHistory(db, 48 * HOUR).rollup(Math.floor(now / DAY) * DAY + DAY + MINUTE);
      assert.equal(await count(db, `SELECT SUM(n) AS c FROM metric_rollups WHERE res = ? AND node_id = ?`, [DAY, n.id]), 3 * 720, 'every sample, in the two days it spans');
      const year = await h.nodeSeries(n.id, '1y', now + DAY);
      assert.deepEqual([year.step_seconds, year.points.length, year.points[0]!.cpu], [86400, 2, 20]);
    });

    test('expiry: each tier after its own retention, in batches (also a batch of one millisecond)', async () => {
      const nodes = new NodeRegistry(db);
      const ids: number[] = [];
      for (let i = 0; i < 3; i++) ids.push((await nodes.add(newNode(`exp-${i}`))).id);
      const h = new MetricHistory(db, 6 * HOUR);
      // After the previous test's samples: a tier rolls forward from its last bucket.
      const now = Math.floor(Date.now() / DAY) * DAY + 2 * HOUR + 30 * MINUTE;
      const start = now - 2 * DAY;
      await db.tx(async () => {
        for (let t = start; t < now; t += 60_000) {
          for (const id of ids) await db.run(`INSERT INTO node_metrics (node_id, time, cpu_percent, load1, mem_percent, disk_max, rx_bps, tx_bps, running, pending) VALUES (?, ?, 20, 1, 50, 70, 100, 200, 1, 0)`, [id, t]);
        }
        // More than a batch in one millisecond, long expired.
        for (let i = 0; i < PRUNE_BATCH + 5; i++) await db.run(`INSERT INTO node_metrics (node_id, time, cpu_percent, load1, mem_percent, disk_max, rx_bps, tx_bps, running, pending) VALUES (?, ?, 1, 1, 1, 1, 1, 1, 0, 0)`, [ids[0]!, start + 30_000]);
      });
      const of = `node_id IN (${ids.join(', ')})`;
      await h.maintain(now);
      assert.equal(await count(db, `SELECT COUNT(*) AS c FROM node_metrics WHERE ${of} AND time < ?`, [now - 6 * HOUR]), 0, 'raw older than its retention is gone');
      assert.equal(await count(db, `SELECT COUNT(*) AS c FROM node_metrics WHERE ${of}`), 3 * 6 * 60);
      assert.equal(await count(db, `SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ? AND ${of}`, [MINUTE]), 3 * 2 * 24 * 60, 'every minute');
      assert.ok(3 * 2 * 24 * 60 > PRUNE_BATCH, 'the minute tier needs more than one batch');
      await h.maintain(now + MINUTE_RETENTION_MS + 2 * DAY);
      assert.equal(await count(db, `SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ? AND ${of}`, [MINUTE]), 0);
      assert.equal(await count(db, `SELECT COUNT(*) AS c FROM node_metrics WHERE ${of}`), 0);
      assert.ok(await count(db, `SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ? AND ${of}`, [HOUR]) > 0, 'the hours stay');
      await h.prune(now + HOUR_RETENTION_MS + 3 * DAY);
      assert.equal(await count(db, `SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ? AND ${of}`, [HOUR]), 0);
      assert.ok(await count(db, `SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ? AND ${of}`, [DAY]) > 0, 'the days stay for a year');
      assert.equal(await count(db, `SELECT COUNT(*) AS c FROM cluster_rollups WHERE res = ? AND bucket < ?`, [MINUTE, now + 2 * DAY]), 0, 'cluster minutes expire too');
    });

    test('settings: absent, set, replaced; set-if-absent has one winner', async () => {
      const s = new SettingsStore(db);
      assert.equal(await s.get('k'), undefined);
      assert.equal(await s.has('k'), false);
      await s.set('k', 'one');
      await s.set('k', 'two');
      assert.deepEqual([await s.get('k'), await s.has('k')], ['two', true]);
      const wins = await Promise.all([s.setIfAbsent('token', 'a'), s.setIfAbsent('token', 'b'), new SettingsStore(db).setIfAbsent('token', 'c')]);
      assert.equal(wins.filter(Boolean).length, 1);
      assert.equal(await s.get('token'), ['a', 'b', 'c'][wins.indexOf(true)]);
    });

    test('packages: versions, projects, holders, tombstones; deployments recorded and recovered', async () => {
      const repo = new PackageRepo(db, join(dir, 'packages'));
      const nodes = new NodeRegistry(db);
      const n = await nodes.add({ ...newNode('pkg-1'), url: 'http://127.0.0.1:1' }); // nothing listens there
      const data = await readFile(await buildNodePackage(tempDir('spiderplane-store-pkg-')));
      await repo.add('beta', '1', data, 'alice');
      await repo.add('alpha', '2', data, null);
      await repo.add('alpha', '10', data, null);
      assert.deepEqual(await repo.projects(), ['beta', 'alpha'], 'by first upload');
      assert.deepEqual(await repo.versions('alpha'), ['2', '10'], 'version order');
      assert.equal(await repo.newest('alpha'), '10');
      assert.deepEqual(await repo.spiders('alpha', '10'), [...NODE_SPIDERS].sort());
      assert.equal((await repo.get('beta', '1'))!.uploaded_by, 'alice');
      assert.equal(await repo.get('beta', '9'), undefined);
      assert.deepEqual((await repo.catalogue()).map((c) => [c.project, c.versions.length, c.spiders.length]), [['beta', 1, NODE_SPIDERS.length], ['alpha', 2, NODE_SPIDERS.length]]);
      await repo.nodeHas(n.id, 'alpha', '10');
      await repo.nodeHas(n.id, 'alpha', '10'); // twice: no error
      await repo.nodeHas(n.id, 'beta', '1');
      assert.deepEqual([...await repo.nodesWith('alpha', '10')], [n.id]);
      assert.equal((await repo.versionsOnNode(n.id)).length, 2);
      await repo.nodeLacks(n.id, 'beta', '1');
      assert.deepEqual(await repo.versionsOnNode(n.id), [{ project: 'alpha', version: '10' }]);
      await repo.setSpiders('beta', '1', ['z', 'a']);
      assert.deepEqual(await repo.spiders('beta', '1'), ['a', 'z']);
      // Deleting leaves a tombstone; uploading again lifts it and forgets which nodes had it.
      assert.equal(await repo.deleteVersion('alpha', '10'), true);
      assert.equal(await repo.deleteVersion('alpha', '10'), false);
      assert.deepEqual(await repo.tombstones(), [{ project: 'alpha', version: '10' }]);
      assert.deepEqual(await repo.versionsOnNode(n.id), []);
      await repo.nodeHas(n.id, 'alpha', '2');
      await repo.add('alpha', '2', data, null);
      assert.deepEqual([...await repo.nodesWith('alpha', '2')], [], 'a re-upload must reach every node again');
      await repo.add('alpha', '10', data, null);
      assert.deepEqual(await repo.tombstones(), []);
      assert.equal(await repo.deleteProject('alpha'), true);
      assert.equal(await repo.deleteProject('alpha'), false);
      assert.deepEqual(await repo.tombstones(), [{ project: 'alpha', version: '*' }]);
      assert.deepEqual(await repo.versions('alpha'), []);
      await repo.add('alpha', '3', data, null);
      assert.deepEqual(await repo.tombstones(), [], "a project's upload lifts its '*' tombstone");

      // Another master (its own disk) pushes a version it did not take: on PostgreSQL the bytes come from the database.
      const elsewhere = new PackageRepo(db, join(tempDir('spiderplane-store-pkg-other-'), 'packages'));
      if (engine === 'postgres') {
        assert.deepEqual(Buffer.from(await (await elsewhere.blob('beta', '1')).arrayBuffer()), data);
        const changed = new AdmZip(data);
        changed.addFile('extra.txt', Buffer.from('a second upload of the same version'));
        await repo.add('beta', '1', changed.toBuffer(), 'alice');
        assert.deepEqual(await elsewhere.read('beta', '1'), changed.toBuffer(), 'the content of the newest upload');
        await repo.add('beta', '1', data, 'alice');
        assert.deepEqual(await elsewhere.read('beta', '1'), data);
      } else {
        await assert.rejects(elsewhere.read('beta', '1'), { code: 'ENOENT' }, 'one master on SQLite: only its disk has the bytes');
      }

      const clientFor = (node: NodeRow, timeoutMs = 2000) => new NodeClient(node, null, timeoutMs);
      const deployer = new Deployer(db, repo, nodes, clientFor);
      const d1 = await deployer.deploy('beta', '1', [n], 'upload');
      const done = await d1.done;
      assert.equal(done.id, d1.id);
      assert.notEqual(done.finished_at, null);
      assert.deepEqual(done.targets.map((t) => [t.node, t.state]), [['pkg-1', 'failed']], 'an unreachable node');
      assert.ok(done.targets[0]!.message && done.targets[0]!.started_at !== null);
      const d2 = await deployer.deploy('alpha', '3', [], 'roll');
      await d2.done;
      assert.deepEqual((await deployer.recent(null)).slice(0, 2).map((d) => d.id), [d2.id, d1.id], 'newest first');
      assert.deepEqual((await deployer.recent('beta')).map((d) => d.id), [d1.id]);
      assert.equal((await deployer.recent(null, 1)).length, 1);
      assert.equal(await deployer.get(Number('x')), undefined, 'an id that is not a number');
      assert.equal(await deployer.get(999_999), undefined);
      // A deploy cut short by a restart is recorded as failed and finished.
      const cut = await db.insert(`INSERT INTO deployments (project, version, reason, created_at) VALUES ('beta', '1', 'upload', 1)`);
      await db.run(`INSERT INTO deployment_targets (deployment_id, node_id, node, state) VALUES (?, ?, 'pkg-1', 'pending')`, [cut, n.id]);
      await deployer.recoverInterrupted(5);
      const recovered = (await deployer.get(cut))!;
      assert.equal(recovered.finished_at, 5);
      assert.deepEqual(recovered.targets.map((t) => [t.state, t.message]), [['failed', 'the master restarted during the deploy']]);
      // Removing the node forgets which versions it holds.
      await repo.nodeHas(n.id, 'beta', '1');
      await nodes.remove(n.id);
      assert.deepEqual([...await repo.nodesWith('beta', '1')], []);
    });
  });
}

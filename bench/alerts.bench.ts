// Alerts and metric history benchmarks: prints numbers, asserts nothing.
// Run: npx tsx bench/alerts.bench.ts [rules|disk]
//   rules  cost of one heartbeat round of rule evaluation for 200 nodes: the pure engine, and the
//          whole round as the master runs it (SQLite reads of nodes and open firings, JSON parse)
//   disk   what metric history costs on disk for 50 nodes x 30 days (raw + 1-minute + 1-hour tiers)
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { openMasterDb } from '../master/db.ts';
import { NodeRegistry } from '../master/nodes/node_registry.ts';
import { RunStore } from '../master/runs/run_store.ts';
import { SqliteDb } from '../master/store/sqlite_db.ts';
import { AlertService, snapshotOf } from '../master/alerts/alert_service.ts';
import { RuleEngine, type AlertRule, type NodeSnapshot } from '../master/alerts/rule_engine.ts';
import { MetricHistory, HOUR, MINUTE, MINUTE_RETENTION_MS } from '../master/metrics/metric_history.ts';
import type { NodeMetrics } from '../common/types.ts';
import { tempDir } from '../test/helpers/slave_process.ts';

const only = process.argv[2];
const want = (name: string) => !only || only === name;
const NODES = 200;

function stats(samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `median ${q(0.5).toFixed(3)} ms, p95 ${q(0.95).toFixed(3)} ms, max ${s[s.length - 1]!.toFixed(3)} ms`;
}

function metrics(i: number, t: number): NodeMetrics {
  return {
    time: t / 1000, cpu_percent: (i * 7 + t / 1000) % 100, cpu_count: 8, load: [1.5, 1.2, 1], memory: { total_bytes: 16e9, used_bytes: 8e9, available_bytes: 8e9, used_percent: 40 + (i % 50) },
    disks: [{ mount: '/', size_bytes: 1e11, used_bytes: 5e10, used_percent: 50 }, { mount: '/data', size_bytes: 1e12, used_bytes: 8e11, used_percent: 80 + (i % 15) }],
    network: { rx_bytes_per_sec: 1e6 * (i % 10), tx_bytes_per_sec: 2e5 * (i % 10) }, uptime_seconds: 1e5, daemon_uptime_seconds: 1e4, running: i % 4, pending: 0, max_proc: 8,
  };
}

function rules(): AlertRule[] {
  const base = { recipients: [], enabled: true, created_at: 0, updated_at: 0, scope: 'all' as const, scope_node: null, scope_project: null, scope_spider: null };
  const out: AlertRule[] = [
    { ...base, id: 1, name: 'offline', kind: 'node_offline', threshold: null, duration_seconds: 0 },
    { ...base, id: 2, name: 'cpu', kind: 'cpu', threshold: 90, duration_seconds: 300 },
    { ...base, id: 3, name: 'mem', kind: 'memory', threshold: 85, duration_seconds: 300 },
    { ...base, id: 4, name: 'disk', kind: 'disk', threshold: 90, duration_seconds: 60 },
    { ...base, id: 5, name: 'rx', kind: 'network_rx', threshold: 5e6, duration_seconds: 60 },
    { ...base, id: 6, name: 'tx', kind: 'network_tx', threshold: 5e6, duration_seconds: 60 },
    { ...base, id: 7, name: 'failed', kind: 'job_failed', threshold: null, duration_seconds: 0 },
  ];
  for (let i = 0; i < 13; i++) out.push({ ...base, id: 8 + i, name: `cpu n${i}`, kind: 'cpu', threshold: 50, duration_seconds: 10, scope: 'node', scope_node: `node-${i}` });
  return out;
}

async function benchRules(): Promise<void> {
  const rs = rules();
  const now = Date.now();
  const snaps: NodeSnapshot[] = [];
  for (let i = 0; i < NODES; i++) {
    const m = metrics(i, now);
    snaps.push({ name: `node-${i}`, status: i % 50 === 0 ? 'offline' : 'online', statusSince: now - 600_000, cpu: m.cpu_percent, mem: m.memory.used_percent, disk: { mount: '/data', percent: m.disks[1]!.used_percent }, rx: m.network.rx_bytes_per_sec, tx: m.network.tx_bytes_per_sec });
  }
  const engine = new RuleEngine();
  const open = new Map<number, Set<string>>();
  const pure: number[] = [];
  let fired = 0;
  for (let round = 0; round < 2000; round++) {
    const t0 = performance.now();
    const ev = engine.evaluateNodes(rs, snaps, open, now + round * 5000);
    pure.push(performance.now() - t0);
    for (const h of ev.fire) { let s = open.get(h.ruleId); if (!s) open.set(h.ruleId, (s = new Set())); s.add(h.subjectKey); fired++; }
    for (const r of ev.resolve) open.get(r.ruleId)?.delete(r.subjectKey);
  }
  console.log(`rules: ${rs.length} rules x ${NODES} nodes, pure engine per round: ${stats(pure.slice(100))} (${fired} firings over 2000 rounds)`);

  // The whole round as the master runs it: nodes from SQLite, metrics JSON parsed, open firings read.
  const db = openMasterDb(tempDir('spiderplane-bench-alerts-'));
  const sql = new SqliteDb(db);
  const reg = new NodeRegistry(sql);
  for (let i = 0; i < NODES; i++) {
    const n = await reg.add({ name: `node-${i}`, url: `http://10.0.${i >> 8}.${i & 255}:6800`, username: null, password: null, source: 'added', max_proc: 8 });
    await reg.recordHeartbeat(n.id, { now, running: 1, pending: 0, maxProc: 8, metrics: metrics(i, now) });
    await reg.setStatus((await reg.byId(n.id))!, i % 50 === 0 ? 'offline' : 'online', 'bench', now - 600_000);
  }
  await reg.flushSamples();
  const svc = new AlertService(sql, reg, new RunStore(sql), async () => null, {
    flags: { host: null, port: null, secure: 'none', user: null, password: null, from: null, to: ['ops@example.com'] }, publicUrl: () => 'http://x',
    groupMs: 60_000, groupWaitMs: 5000, retryMinMs: 5000, retryMaxMs: 600_000, evalIntervalMs: 3_600_000, rawRetentionMs: 48 * HOUR,
  });
  for (const r of rs) await svc.rules.create({ ...r });
  const full: number[] = [];
  const snapCost: number[] = [];
  for (let round = 0; round < 300; round++) {
    const t0 = performance.now();
    await svc.evaluateRound(now + round * 5000);
    full.push(performance.now() - t0);
    const t1 = performance.now();
    (await reg.all()).map(snapshotOf);
    snapCost.push(performance.now() - t1);
  }
  console.log(`rules: whole round in the master (SQLite + JSON + engine + firings): ${stats(full.slice(20))}`);
  console.log(`rules:   of which reading and parsing the 200 nodes: ${stats(snapCost.slice(20))}`);
  console.log(`rules:   firings recorded: ${JSON.stringify(await svc.firings.counts())}`);
  db.close();
}

async function benchDisk(): Promise<void> {
  const NODES_D = 50;
  const DAYS = 30;
  const HEARTBEAT_MS = 5000;
  const RAW_HOURS = 48;
  const dir = tempDir('spiderplane-bench-metrics-');
  const db = openMasterDb(dir);
  const sql = new SqliteDb(db);
  const reg = new NodeRegistry(sql);
  const now = Math.floor(Date.now() / HOUR) * HOUR;
  const ids: number[] = [];
  for (let i = 0; i < NODES_D; i++) ids.push((await reg.add({ name: `node-${i}`, url: `http://10.0.0.${i}:6800`, username: null, password: null, source: 'added', max_proc: 8 })).id);
  const history = new MetricHistory(sql, RAW_HOURS * HOUR);
  const t0 = performance.now();
  // Raw samples only for the window they are kept; older tiers are written the way rollup() writes them.
  const ins = db.prepare(`INSERT INTO node_metrics (node_id, time, cpu_percent, load1, mem_percent, disk, rx_bps, tx_bps, running, pending) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  db.transaction(() => {
    for (let t = now - RAW_HOURS * HOUR; t < now; t += HEARTBEAT_MS) {
      for (let i = 0; i < NODES_D; i++) {
        const m = metrics(i, t);
        ins.run(ids[i], t + i, m.cpu_percent, m.load[0], m.memory.used_percent, JSON.stringify(m.disks.map((d) => ({ mount: d.mount, used_percent: d.used_percent }))),
          m.network.rx_bytes_per_sec, m.network.tx_bytes_per_sec, m.running, m.pending);
      }
    }
  })();
  const roll = db.prepare(`INSERT OR REPLACE INTO metric_rollups (res, node_id, bucket, n, cpu_avg, cpu_max, load_avg, mem_avg, mem_max, disk_max, rx_avg, rx_max, tx_avg, tx_max, running_avg, running_max)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  db.transaction(() => {
    for (let t = now - MINUTE_RETENTION_MS; t < now - RAW_HOURS * HOUR; t += MINUTE) {
      for (let i = 0; i < NODES_D; i++) roll.run(MINUTE, ids[i], t, 12, 41.3, 77.1, 1.5, 52.2, 53.9, 91.4, 1234567.8, 2345678.9, 234567.8, 345678.9, 1.25, 2);
    }
    for (let t = now - DAYS * 24 * HOUR; t < now - RAW_HOURS * HOUR; t += HOUR) {
      for (let i = 0; i < NODES_D; i++) roll.run(HOUR, ids[i], t, 720, 41.3, 77.1, 1.5, 52.2, 53.9, 91.4, 1234567.8, 2345678.9, 234567.8, 345678.9, 1.25, 2);
    }
  })();
  const filled = performance.now() - t0;
  const t1 = performance.now();
  await history.rollup(now); // the raw 48 h -> minutes and hours, as the master does it
  const rolled = performance.now() - t1;
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.exec('VACUUM');
  const size = statSync(join(dir, 'master.db')).size;
  const count = (sql: string) => (db.prepare(sql).get() as { c: number }).c;
  const rawRows = count(`SELECT COUNT(*) AS c FROM node_metrics`);
  const minRows = count(`SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ${MINUTE}`);
  const hourRows = count(`SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ${HOUR}`);
  let perTable = '';
  try {
    const rows = db.prepare(`SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name ORDER BY bytes DESC`).all() as Array<{ name: string; bytes: number }>;
    perTable = rows.filter((r) => r.bytes > 100_000).map((r) => `${r.name} ${(r.bytes / 1e6).toFixed(1)} MB`).join(', ');
  } catch {
    perTable = '(dbstat not available)';
  }
  const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  console.log(`disk: ${NODES_D} nodes x ${DAYS} days, heartbeat ${HEARTBEAT_MS / 1000} s: raw ${RAW_HOURS} h = ${rawRows} rows, 1-minute ${MINUTE_RETENTION_MS / (24 * HOUR)} days = ${minRows} rows, 1-hour ${DAYS} days = ${hourRows} rows`);
  console.log(`disk: database file ${mb(size)} (written in ${(filled / 1000).toFixed(1)} s; rolling up 48 h of raw samples took ${(rolled / 1000).toFixed(2)} s)`);
  console.log(`disk: per table and index: ${perTable}`);
  // A chart read on a month of data: the node 30d chart and the cluster 7d chart.
  for (const [what, fn] of [['node 30d', () => history.nodeSeries(ids[0]!, '30d', now)], ['node 24h', () => history.nodeSeries(ids[0]!, '24h', now)], ['cluster 7d', () => history.clusterSeries('7d', now)]] as const) {
    const t = performance.now();
    const r = await fn();
    console.log(`disk: chart ${what}: ${r.points.length} points in ${(performance.now() - t).toFixed(1)} ms`);
  }
  db.close();
}

if (want('rules')) await benchRules();
if (want('disk')) await benchDisk();

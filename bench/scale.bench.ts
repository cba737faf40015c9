// Flat cost at scale (issue 11): prints numbers, asserts nothing.
// Run: npx tsx bench/scale.bench.ts [history|slave|heartbeat|metrics|idle] [--seconds N]
//   history    master listjobs.json, /api/status, daemonstatus.json, /api/runs, /jobs, dashboard at 1 000 and 1 000 000 runs
//   slave      slave job-end cost and daemonstatus.json at 100 and 100 000 finished jobs (+ listjobs with --finished-to-keep 100000)
//   heartbeat  master CPU, RSS and max event-loop lag heartbeating 200 and 1 000 fake nodes every 5 s (in-process master)
//   metrics    metrics database size after a simulated 48 h at 1 000 nodes, and the steady state per tier
//   idle       idle slave CPU
import Database from 'better-sqlite3';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { openMasterDb } from '../master/db.ts';
import { Master } from '../master/master.ts';
import { masterConfig } from '../master/config.ts';
import { SqliteDb } from '../master/store/sqlite_db.ts';
import { MetricHistory, MINUTE, HOUR, DAY, MINUTE_RETENTION_MS, HOUR_RETENTION_MS, DAY_RETENTION_MS } from '../master/metrics/metric_history.ts';
import { buildZip } from '../test/helpers/fixtures.ts';
import { startMaster, ADMIN } from '../test/helpers/master_process.ts';
import { fillRuns } from '../test/helpers/run_fill.ts';
import { getJson, postForm, ROOT, startSlave, tempDir, uploadEgg, waitFor } from '../test/helpers/slave_process.ts';
import { cpuSeconds, measureInProcess, rssMb } from './proc_usage.ts';

const args = process.argv.slice(2);
const secondsAt = args.indexOf('--seconds');
const SECONDS = secondsAt >= 0 ? Number(args[secondsAt + 1]) : 60;
const only = args.find((a, i) => !a.startsWith('--') && (secondsAt < 0 || i !== secondsAt + 1));
const want = (name: string) => !only || only === name;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const f1 = (n: number) => n.toFixed(1);
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load average ${load()} at start (shared with other work)`);

// ---- master history ----

async function masterAt(runs: number): Promise<Array<[string, number]>> {
  const dir = tempDir('spiderplane-scalebench-');
  const db = openMasterDb(dir);
  for (let p = 0; p < 5; p++) db.prepare(`INSERT INTO versions (project, version, kind, size, sha256, uploaded_at) VALUES (?, '1', 'generic', 1, 'x', 0)`).run(`p${p}`);
  const t0 = performance.now();
  // 'p4' is quiet (1 run in 1 000 at 1 000 000 runs, 1 in 10 at 1 000): listjobs.json?project=p4 must still list its newest 100.
  const quiet = runs >= 100_000 ? 1000 : 10;
  for (let done = 0; done < runs; done += 100_000) {
    const count = Math.min(100_000, runs - done);
    // One run every 100 s, oldest first, whatever the size: the last 24 hours hold the same 864
    // runs at both sizes, only the length of the history differs (1 000 000 runs = 3.2 years).
    const span = runs * 100_000;
    fillRuns(db, { count, project: (i) => (i % quiet === 0 ? 'p4' : `p${i % 4}`), spreadMs: count * 100_000, now: Date.now() - span + (done + count) * 100_000 });
  }
  fillRuns(db, { count: 20, state: () => 'running' });
  fillRuns(db, { count: 10, state: () => 'pending' });
  db.close();
  const fillS = (performance.now() - t0) / 1000;
  const master = await startMaster({ dataDir: dir, args: ['--history-days', '0', '--history-max-runs', '0'] });
  try {
    const token = ((await master.api<{ token: string }>('POST', '/api/tokens', { name: 'bench' })).body).token;
    const api = { Authorization: `Bearer ${token}` };
    const loginPage = await fetch(`${master.url}/login`);
    const csrfCookie = /sp_login_csrf=([^;]+)/.exec(loginPage.headers.get('set-cookie') ?? '')![1]!;
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await loginPage.text())![1]!;
    const login = await fetch(`${master.url}/login`, {
      method: 'POST', redirect: 'manual', headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: `sp_login_csrf=${csrfCookie}` },
      body: new URLSearchParams({ username: ADMIN.user, password: ADMIN.password, _csrf: csrf, next: '/' }),
    });
    const page = { Cookie: `sp_session=${/sp_session=([^;]+)/.exec(login.headers.get('set-cookie') ?? '')![1]!}` };
    const paths: Array<[string, Record<string, string>]> = [
      ['/listjobs.json', api], ['/listjobs.json?project=p4', api], ['/daemonstatus.json', api], ['/api/status', api],
      ['/api/runs?limit=50', api], ['/api/runs?project=p4&limit=50', api], ['/api/runs?state=finished&limit=50', api],
      ['/jobs', page], ['/jobs?project=p4', page], ['/jobs?state=failed', page], ['/', page],
    ];
    const out: Array<[string, number]> = [];
    for (const [path, headers] of paths) {
      const times: number[] = [];
      for (let i = 0; i < 13; i++) {
        const r = await fetch(master.url + path, { headers });
        const body = await r.text();
        if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status} ${body.slice(0, 200)}`);
        if (path === '/listjobs.json?project=p4' && i === 0) {
          const n = (JSON.parse(body) as { finished: unknown[] }).finished.length;
          if (n !== 100) console.log(`  !! ${path} listed ${n} finished, not 100`);
        }
        if (i >= 3) times.push(Number(/dur=([\d.]+)/.exec(r.headers.get('server-timing') ?? '')![1]));
      }
      out.push([path === '/' ? '/ (dashboard)' : path, median(times)]);
    }
    console.log(`  (${runs.toLocaleString('en')} runs filled directly in ${f1(fillS)} s)`);
    return out;
  } finally {
    await master.stop();
  }
}

async function history(): Promise<void> {
  console.log('master: server time per request (Server-Timing, median of 10 after 3 warm-ups), history filled directly in SQLite:');
  const small = await masterAt(1000);
  const big = await masterAt(1_000_000);
  console.log(`  ${'request'.padEnd(36)} ${'1 000 runs'.padStart(12)} ${'1 000 000 runs'.padStart(16)}  ratio`);
  for (let i = 0; i < small.length; i++) {
    const [path, a] = small[i]!;
    const b = big[i]![1];
    console.log(`  ${path.padEnd(36)} ${(f1(a) + ' ms').padStart(12)} ${(f1(b) + ' ms').padStart(16)}  ${(b / a).toFixed(2)}x`);
  }
}

// ---- slave history ----

async function slaveAt(finished: number): Promise<{ cpuPerJob: number; daemonstatus: number; wall: number }> {
  const dataDir = tempDir('spiderplane-scalebench-slave-');
  let slave = await startSlave({ dataDir });
  const pkg = readFileSync(await buildZip(join(dataDir, 'p.zip'), { 'spiderplane.json': JSON.stringify({ spiders: { noop: { command: 'true' } } }) }));
  await uploadEgg(slave.url, 'bench', '1', pkg);
  await slave.stop();
  const db = new Database(join(dataDir, 'slave.db'));
  const ins = db.prepare(`INSERT INTO jobs (id, project, spider, state, created_at, start_time, end_time, outcome) VALUES (?, ?, 'noop', 'finished', ?, ?, ?, 'succeeded')`);
  const t = Date.now() / 1000 - finished;
  db.transaction(() => { for (let i = 0; i < finished; i++) ins.run(`old${i}`, `project${i % 100}`, t + i, t + i, t + i + 0.5); })();
  db.close();
  // The history is full at its limit: every job end is one over it.
  slave = await startSlave({ dataDir, args: ['--max-proc', '4', '--history-to-keep', String(finished), '--finished-to-keep', '100'] });
  try {
    await sleep(2000);
    const times: number[] = [];
    for (let i = 0; i < 23; i++) {
      const t0 = performance.now();
      await getJson(slave.url, '/daemonstatus.json');
      if (i >= 3) times.push(performance.now() - t0);
    }
    const pid = slave.proc.pid!;
    const c0 = cpuSeconds(pid);
    const t0 = performance.now();
    for (let i = 0; i < 40; i++) await postForm(slave.url, '/schedule.json', { project: 'bench', spider: 'noop' });
    await waitFor('40 jobs done', async () => {
      const s = await getJson(slave.url, '/daemonstatus.json');
      return s.running === 0 && s.pending === 0 ? true : undefined;
    }, 600_000, 20);
    await waitFor('the last job recorded', async () => {
      const j = (await getJson(slave.url, '/jobs.json', { state: 'finished', project: 'bench', limit: '100' })).jobs as unknown[];
      return j.length >= 40 ? true : undefined;
    }, 60_000, 20);
    const wall = (performance.now() - t0) / 1000;
    // The history pruner runs every 10 s: 12 s more so its pass over these 40 jobs is counted too.
    await sleep(12_000);
    const used = cpuSeconds(pid) - c0;
    return { cpuPerJob: (used / 40) * 1000, daemonstatus: median(times), wall };
  } finally {
    await slave.stop();
  }
}

async function slaveHistory(): Promise<void> {
  console.log("slave: 40 shell 'true' jobs at max_proc 4 with the history full at --history-to-keep (daemon CPU per job incl. spawning, over the batch and the next 12 s so the pruning pass is counted), and daemonstatus.json:");
  for (const n of [100, 100_000]) {
    const r = await slaveAt(n);
    console.log(`  ${n.toLocaleString('en').padStart(7)} finished: daemon CPU per job ${f1(r.cpuPerJob)} ms (40 jobs in ${r.wall.toFixed(2)} s wall), daemonstatus.json median ${r.daemonstatus.toFixed(2)} ms (client side)`);
  }
  // --finished-to-keep 100000: one listjobs.json call, and the longest stall it causes on the daemon.
  const dataDir = tempDir('spiderplane-scalebench-slave-');
  let slave = await startSlave({ dataDir });
  await slave.stop();
  const db = new Database(join(dataDir, 'slave.db'));
  const ins = db.prepare(`INSERT INTO jobs (id, project, spider, state, created_at, start_time, end_time, outcome) VALUES (?, ?, 's', 'finished', ?, ?, ?, 'succeeded')`);
  const t = Date.now() / 1000 - 100_000;
  db.transaction(() => { for (let i = 0; i < 100_000; i++) ins.run(`old${i}`, `project${i % 100}`, t + i, t + i, t + i + 0.5); })();
  db.close();
  slave = await startSlave({ dataDir, args: ['--finished-to-keep', '100000'] });
  try {
    const times: number[] = [];
    let worstPing = 0;
    for (let i = 0; i < 5; i++) {
      let stop = false;
      // A small request every 5 ms meanwhile: its worst answer time is the daemon's stall.
      const pinger = (async () => {
        while (!stop) {
          const p0 = performance.now();
          await fetch(slave.url + '/daemonstatus.json').then((r) => r.arrayBuffer());
          worstPing = Math.max(worstPing, performance.now() - p0);
          await sleep(5);
        }
      })();
      const t0 = performance.now();
      const r = await fetch(slave.url + '/listjobs.json');
      const bytes = (await r.arrayBuffer()).byteLength;
      times.push(performance.now() - t0);
      stop = true;
      await pinger;
      if (i === 0) console.log(`  --finished-to-keep 100000: listjobs.json is ${(bytes / 1e6).toFixed(1)} MB`);
    }
    console.log(`  --finished-to-keep 100000: listjobs.json median ${f1(median(times))} ms; worst daemonstatus.json answer meanwhile ${f1(worstPing)} ms`);
  } finally {
    await slave.stop();
  }
}

// ---- heartbeat ----

async function fakeNodes(): Promise<{ port: number; pid: number; stop: () => void }> {
  const proc = spawn(join(ROOT, 'node_modules', '.bin', 'tsx'), [join(ROOT, 'bench', 'fake_scrapyd.ts')], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  const port = await new Promise<number>((res) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /fake scrapyd on (\d+)/.exec(out);
      if (m) res(Number(m[1]));
    });
  });
  return { port, pid: proc.pid!, stop: () => process.kill(-proc.pid!, 'SIGKILL') };
}

async function heartbeatAt(n: number, seconds: number): Promise<void> {
  const fake = await fakeNodes();
  const dataDir = tempDir('spiderplane-scalebench-hb-');
  const master = await Master.start(masterConfig({ port: 0, data_dir: dataDir, admin_user: 'admin', admin_password: 'admin-password-1', cluster_token: 't', heartbeat_interval: 5 }));
  const origLog = console.log;
  const origErr = console.error;
  console.log = () => undefined; // "node X is online" x n
  let errors = 0;
  console.error = () => { errors++; };
  try {
    for (let i = 0; i < n; i++) await master.addNode({ url: `http://127.0.0.1:${fake.port}/n${i}`, name: `fake${i}`, username: null, password: null });
    await waitFor('fake nodes online', async () => ((await master.nodes.all()).filter((x) => x.status === 'online').length === n ? true : undefined), 300_000, 500);
    console.log = origLog;
    await sleep(10_000);
    const errorsBefore = errors;
    const w = await measureInProcess(seconds);
    const mem = process.memoryUsage();
    const samples = (await master.sql.get<{ c: number }>(`SELECT COUNT(*) AS c FROM node_metrics`))!.c;
    console.log(`  ${String(n).padStart(5)} nodes, in-process: CPU ${f1(w.cpuPercent)} % of one core, RSS max ${w.rssMaxMb.toFixed(0)} MB (V8 heap ${(mem.heapUsed / 1e6).toFixed(0)} of ${(mem.heapTotal / 1e6).toFixed(0)} MB, external ${(mem.external / 1e6).toFixed(0)} MB), ` +
      `event-loop lag p50 ${f1(w.lagP50Ms)} ms, p99 ${f1(w.lagP99Ms)} ms, max ${f1(w.lagMaxMs)} ms over ${w.wallSeconds.toFixed(0)} s ` +
      `(${samples} samples stored; ${errors - errorsBefore} errors logged meanwhile; fake nodes' process ${f1(cpuSeconds(fake.pid))} CPU s in all; load ${load()})`);
  } finally {
    console.log = origLog;
    console.error = origErr;
    await master.stop();
    fake.stop();
  }
}

/** The master as its own process (as in production): its CPU and RSS, nodes filled in its database before it starts. */
async function heartbeatStandalone(n: number, seconds: number): Promise<void> {
  const fake = await fakeNodes();
  const dir = tempDir('spiderplane-scalebench-hb-');
  const db = openMasterDb(dir);
  const ins = db.prepare(`INSERT INTO nodes (name, url, source, status_since, added_at) VALUES (?, ?, 'added', ?, ?)`);
  db.transaction(() => { for (let i = 0; i < n; i++) ins.run(`fake${i}`, `http://127.0.0.1:${fake.port}/n${i}`, Date.now(), Date.now()); })();
  db.close();
  const master = await startMaster({ dataDir: dir, args: ['--heartbeat-interval', '5'] });
  try {
    await waitFor('fake nodes online', async () => {
      const r = await master.api<{ nodes: Array<{ status: string }> }>('GET', '/api/nodes');
      return r.body.nodes.filter((x) => x.status === 'online').length === n ? true : undefined;
    }, 300_000, 1000);
    await sleep(10_000);
    const pid = master.proc.pid!;
    const c0 = cpuSeconds(pid);
    let rssMax = 0;
    for (let i = 0; i < seconds; i++) {
      await sleep(1000);
      rssMax = Math.max(rssMax, rssMb(pid));
    }
    console.log(`  ${String(n).padStart(5)} nodes, master as its own process: CPU ${f1(((cpuSeconds(pid) - c0) / seconds) * 100)} % of one core, RSS max ${rssMax.toFixed(0)} MB (tsx loader included); load ${load()}`);
  } finally {
    await master.stop();
    fake.stop();
  }
}

async function heartbeat(): Promise<void> {
  console.log(`master heartbeating fake nodes every 5 s (listjobs + metrics.json per node, samples stored), measured over ${SECONDS} s; ` +
    'event-loop lag with the master in the benchmark process (perf_hooks histogram), CPU and RSS also with the master as its own process:');
  for (const n of process.env.HB_NODES ? [Number(process.env.HB_NODES)] : [200, 1000]) {
    await heartbeatAt(n, SECONDS);
    await heartbeatStandalone(n, SECONDS);
  }
}

// ---- metrics size ----

async function metricsSize(): Promise<void> {
  const NODES = 1000;
  const HB = 5000;
  const RAW_H = 6;
  const dir = tempDir('spiderplane-scalebench-metrics-');
  const db = openMasterDb(dir);
  const ins = db.prepare(`INSERT INTO nodes (name, url, source, status_since, added_at) VALUES (?, ?, 'added', 0, 0)`);
  const ids: number[] = [];
  db.transaction(() => { for (let i = 0; i < NODES; i++) ids.push(Number(ins.run(`n${i}`, `http://n${i}`).lastInsertRowid)); })();
  const history = new MetricHistory(new SqliteDb(db), RAW_H * HOUR);
  const now = Math.floor(Date.now() / HOUR) * HOUR;
  const start = now - 48 * HOUR;
  const t0 = performance.now();
  // Hours 0-42: what the raw samples leave behind once expired, their minute roll-ups, written
  // directly (the raw rows of those hours would be deleted long before the end).
  const roll = db.prepare(`INSERT INTO metric_rollups (res, node_id, bucket, n, cpu_avg, cpu_max, load_avg, mem_avg, mem_max, disk_max, rx_avg, rx_max, tx_avg, tx_max, running_avg, running_max)
    VALUES (${MINUTE}, ?, ?, 12, ?, ?, 1.5, 52.2, 53.9, 71, ?, ?, ?, ?, 1.25, 2)`);
  const rawStart = now - RAW_H * HOUR - 10 * MINUTE;
  for (let t = start; t < rawStart; t += HOUR) {
    db.transaction(() => {
      for (let m = t; m < Math.min(t + HOUR, rawStart); m += MINUTE) for (const id of ids) roll.run(id, m, 20 + (id % 50), 60 + (id % 30), 1e6 + id, 2e6 + id, 5e5 + id, 9e5 + id);
    })();
    await history.rollup(Math.min(t + HOUR, rawStart)); // hours (and days) rolled as the master does, hour by hour
  }
  // The last 6 h 10 min: every raw sample of every node, with the master's rollup and expiry every 10 minutes.
  const sample = db.prepare(`INSERT INTO node_metrics (node_id, time, cpu_percent, load1, mem_percent, disk_max, rx_bps, tx_bps, running, pending) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`);
  let maintainWorst = 0;
  let stepWorst = 0;
  const worstStep = { what: '', ms: 0 };
  for (let t = rawStart; t < now; t += 10 * MINUTE) {
    db.transaction(() => {
      for (let s = t; s < t + 10 * MINUTE; s += HB) for (const id of ids) sample.run(id, s + (id % HB), 10 + ((s / HB + id) % 40), 0.5 + (id % 4) / 10, 40 + (id % 20), 50 + (id % 40), 1000 + (s % 7000), 500 + (s % 3000), id % 3);
    })();
    // The bulk insert's WAL is checkpointed here, not inside maintain() (at 200 samples/s a checkpoint is ~4 MB every few minutes).
    db.pragma('wal_checkpoint(PASSIVE)');
    const m0 = performance.now();
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    await history.maintain(t + 10 * MINUTE, (what, cpuMs) => { if (cpuMs > worstStep.ms) Object.assign(worstStep, { what, ms: cpuMs }); });
    h.disable();
    maintainWorst = Math.max(maintainWorst, performance.now() - m0);
    stepWorst = Math.max(stepWorst, h.max / 1e6);
  }
  db.pragma('wal_checkpoint(TRUNCATE)');
  const size = statSync(join(dir, 'master.db')).size;
  const count = (sql: string) => (db.prepare(sql).get() as { c: number }).c;
  const rows = {
    raw: count(`SELECT COUNT(*) AS c FROM node_metrics`), minute: count(`SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ${MINUTE}`),
    hour: count(`SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ${HOUR}`), day: count(`SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ${DAY}`),
  };
  const sizes = Object.fromEntries((db.prepare(`SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name`).all() as Array<{ name: string; bytes: number }>).map((r) => [r.name, r.bytes]));
  const rawBytes = (sizes.node_metrics ?? 0) + (sizes.node_metrics_node_time ?? 0) + (sizes.node_metrics_time ?? 0);
  const rollBytes = (sizes.metric_rollups ?? 0) + (sizes.metric_rollups_time ?? 0);
  const perRaw = rawBytes / rows.raw;
  const perRoll = rollBytes / (rows.minute + rows.hour + rows.day);
  const mb = (b: number) => `${(b / 1e6).toFixed(0)} MB`;
  console.log(`metrics at ${NODES} nodes, heartbeat 5 s, simulated 48 h (0-42 h as minute roll-ups written directly, the last 6 h 10 min as raw samples with rollup and batched expiry every 10 min) in ${f1((performance.now() - t0) / 1000)} s:`);
  console.log(`  rows: raw ${rows.raw} (${RAW_H} h kept), 1-minute ${rows.minute}, 1-hour ${rows.hour}, 1-day ${rows.day}; database file ${mb(size)} (raw ${mb(rawBytes)}, roll-ups ${mb(rollBytes)}); ${f1(perRaw)} B per raw row, ${f1(perRoll)} B per roll-up row with indexes`);
  const steady = NODES * ((RAW_H * HOUR) / HB * perRaw + (MINUTE_RETENTION_MS / MINUTE + HOUR_RETENTION_MS / HOUR + DAY_RETENTION_MS / DAY) * perRoll);
  console.log(`  steady state after a year (raw ${RAW_H} h, minutes ${MINUTE_RETENTION_MS / DAY} d, hours ${HOUR_RETENTION_MS / DAY} d, days ${DAY_RETENTION_MS / DAY} d), from the measured row sizes: ~${mb(steady)}`);
  console.log(`  maintain() every 10 simulated minutes (rollup in chunks of 100 nodes + batched expiry): longest pass ${f1(maintainWorst)} ms in all, longest event-loop stall inside it ${f1(stepWorst)} ms wall (the machine's load included); the costliest single step took ${f1(worstStep.ms)} ms of CPU (${worstStep.what})`);
  const c0 = performance.now();
  for (const r of ['1h', '24h', '7d', '30d', '1y'] as const) await history.clusterSeries(r, now);
  const c1 = performance.now();
  await history.nodeSeries(ids[0]!, '24h', now);
  console.log(`  cluster charts 1h+24h+7d+30d+1y read in ${f1(c1 - c0)} ms together; node 24h chart ${f1(performance.now() - c1)} ms`);
  db.close();
}

// ---- idle slave ----

async function idle(): Promise<void> {
  const slave = await startSlave();
  try {
    const pid = slave.proc.pid!;
    await sleep(20_000); // past start-up and V8's post-start memory-reducing collections
    const c0 = cpuSeconds(pid);
    await sleep(SECONDS * 1000);
    const used = cpuSeconds(pid) - c0;
    console.log(`idle slave: CPU ${((used / SECONDS) * 100).toFixed(3)} % of one core over ${SECONDS} s (${f1(used * 1000)} ms of CPU; process tree: tsx loader + daemon), ${rssMb(pid).toFixed(0)} MB RSS`);
  } finally {
    await slave.stop();
  }
}

if (want('history')) await history();
if (want('slave')) await slaveHistory();
if (want('heartbeat')) await heartbeat();
if (want('metrics')) await metricsSize();
if (want('idle')) await idle();
console.log(`load average at the end: ${load()}`);

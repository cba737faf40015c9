// The master on SQLite and on PostgreSQL, side by side (issue 12): prints numbers, asserts nothing.
// Run: npm run bench:ha [-- dispatch|history|heartbeat|takeover] [--seconds N] [--kills N]
//   dispatch   runs/s through POST /api/runs over 10 simulated nodes, one at a time and 20 in flight
//   history    server time of /api/runs, /listjobs.json, /api/status, /jobs and the dashboard at 1 000 and 1 000 000 runs
//   heartbeat  master CPU, RSS and max event-loop lag heartbeating 1 000 simulated nodes every 5 s (master in this process)
//   takeover   three masters on one PostgreSQL: kill -9 of the leader until another reports "leader": true
// PostgreSQL is a throwaway cluster in a temporary folder, with the durability SQLite has here
// (fsync on, commits not waited for: synchronous_commit off ≈ SQLite's WAL + synchronous=NORMAL),
// stopped and removed at the end, whatever happens.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Master } from '../master/master.ts';
import { masterConfig } from '../master/config.ts';
import { openMasterStore, parseDatabaseLocation } from '../master/store/open_store.ts';
import type { SqlDb } from '../master/store/sql_db.ts';
import { buildZip } from '../test/helpers/fixtures.ts';
import { freePort } from '../test/helpers/daemon_tools.ts';
import { startMaster, ADMIN, basic, type MasterHandle } from '../test/helpers/master_process.ts';
import { ROOT, tempDir, waitFor } from '../test/helpers/slave_process.ts';
import { cpuSeconds, measureInProcess, throughput } from './proc_usage.ts';

const args = process.argv.slice(2);
const flag = (name: string, def: number) => { const i = args.indexOf(name); return i >= 0 ? Number(args[i + 1]) : def; };
const SECONDS = flag('--seconds', 60);
const KILLS = flag('--kills', 3);
const only = args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
const want = (name: string) => !only || only === name;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const median = (xs: number[]) => sorted(xs)[Math.floor(xs.length / 2)]!;
const p95 = (xs: number[]) => sorted(xs)[Math.min(xs.length - 1, Math.ceil(xs.length * 0.95) - 1)]!;
const f1 = (n: number) => n.toFixed(1);
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

// ---- what to clean up, even on Ctrl-C ----

const cleanups: Array<() => Promise<void> | void> = [];
async function cleanUp(): Promise<void> {
  while (cleanups.length) {
    try { await cleanups.pop()!(); } catch (e) { console.error('cleanup:', e); }
  }
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { void cleanUp().finally(() => process.exit(130)); });

/** A temporary folder removed at the end. */
function benchDir(prefix = 'spiderplane-habench-'): string {
  const dir = tempDir(prefix);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ---- a PostgreSQL cluster for this run ----

interface Cluster { adminUrl: string; postmasterPid: number; version: string }

function pgBin(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(join(base, v, 'bin', 'pg_ctl'))) return join(base, v, 'bin');
  throw new Error('PostgreSQL is not installed (apt-get install -y postgresql)');
}

async function startCluster(): Promise<Cluster> {
  const bin = pgBin();
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'spiderplane-habench-pg-'));
  const data = join(dir, 'data');
  const asPg = (cmd: string, a: string[]): [string, string[]] => root ? ['runuser', ['-u', 'postgres', '--', cmd, ...a]] : [cmd, a];
  if (root) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
  let started = false;
  cleanups.push(() => {
    if (started) spawnSync(...asPg(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']), { encoding: 'utf8' });
    rmSync(dir, { recursive: true, force: true });
  });
  const init = spawnSync(...asPg(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']), { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  const port = await freePort();
  const opts = `-p ${port} -h 127.0.0.1 -k ${dir} -c synchronous_commit=off -c max_connections=200`;
  started = true;
  const start = spawnSync(...asPg(join(bin, 'pg_ctl'), ['-D', data, '-o', opts, '-l', join(dir, 'server.log'), '-w', '-t', '120', 'start']), { encoding: 'utf8' });
  if (start.status !== 0) throw new Error(`pg_ctl start failed: ${start.stderr || start.stdout}`);
  const postmasterPid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  const version = (await c.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]!.v;
  await c.end();
  return { adminUrl, postmasterPid, version };
}

let cluster: Cluster | null = null;
async function freshDatabase(): Promise<string> {
  cluster ??= await startCluster();
  const name = `habench_${randomBytes(5).toString('hex')}`;
  const c = new pg.Client({ connectionString: cluster.adminUrl });
  await c.connect();
  try { await c.query(`CREATE DATABASE ${name}`); } finally { await c.end(); }
  const u = new URL(cluster.adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Frees a database's space once a part is done with it (a 1 000 000-run history is ~1 GB). */
async function dropDatabase(database: string): Promise<void> {
  if (database.startsWith('sqlite:')) {
    const file = database.slice('sqlite:'.length);
    for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
    return;
  }
  const c = new pg.Client({ connectionString: cluster!.adminUrl });
  await c.connect();
  try { await c.query(`DROP DATABASE IF EXISTS ${new URL(database).pathname.slice(1)} WITH (FORCE)`); } finally { await c.end(); }
}

type Engine = 'sqlite' | 'postgres';
const ENGINES: Engine[] = ['sqlite', 'postgres'];
/** A new, empty database of either engine, as a --database value. */
const newDatabase = async (engine: Engine): Promise<string> => engine === 'sqlite' ? `sqlite:${join(benchDir(), 'master.db')}` : freshDatabase();
/** The master's schema, created as a master would. */
async function openSchema(database: string): Promise<SqlDb> {
  return openMasterStore(parseDatabaseLocation(database, tmpdir()));
}
async function startTracked(opts: { args: string[] }): Promise<MasterHandle> {
  const m = await startMaster({ dataDir: benchDir('spiderplane-habench-master-'), ...opts });
  cleanups.push(() => m.kill9().catch(() => undefined));
  return m;
}

// ---- simulated nodes ----

async function fakeNodes(): Promise<{ port: number; pid: number; stop: () => void }> {
  const proc = spawn(join(ROOT, 'node_modules', '.bin', 'tsx'), [join(ROOT, 'bench', 'fake_scrapyd.ts')], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  let stopped = false;
  const stop = () => { if (!stopped) { stopped = true; try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ } } };
  cleanups.push(stop);
  const port = await new Promise<number>((res, rej) => {
    let out = '';
    proc.once('exit', (code) => rej(new Error(`fake nodes exited (${code})`)));
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /fake scrapyd on (\d+)/.exec(out);
      if (m) res(Number(m[1]));
    });
  });
  return { port, pid: proc.pid!, stop };
}

async function waitOnline(master: MasterHandle, n: number): Promise<void> {
  await waitFor(`${n} fake nodes online`, async () => {
    const r = await master.api<{ nodes: Array<{ status: string }> }>('GET', '/api/nodes');
    return r.body.nodes.filter((x) => x.status === 'online').length === n ? true : undefined;
  }, 300_000, 500);
}

// ---- 1. dispatch throughput ----

async function dispatchOn(engine: Engine): Promise<{ seq: number; par: number }> {
  const fake = await fakeNodes();
  const master = await startTracked({ args: ['--heartbeat-interval', '5', '--database', await newDatabase(engine)] });
  try {
    for (let i = 0; i < 10; i++) {
      const r = await master.api('POST', '/api/nodes', { url: `http://127.0.0.1:${fake.port}/n${i}`, name: `fake${i}` });
      if (r.status !== 201) throw new Error(JSON.stringify(r.body));
    }
    await waitOnline(master, 10);
    const pkg = readFileSync(await buildZip(join(benchDir(), 'p.zip'), { 'spiderplane.json': JSON.stringify({ spiders: { s: { command: 'true' } } }) }));
    const form = new FormData();
    form.set('version', '1');
    form.set('egg', new Blob([new Uint8Array(pkg)]), 'p.zip');
    const up = await fetch(`${master.url}/api/projects/p/versions?wait=1`, { method: 'POST', body: form, headers: { Authorization: basic(ADMIN.user, ADMIN.password) } });
    if (!up.ok) throw new Error(`upload: HTTP ${up.status} ${await up.text()}`);
    const one = async () => {
      const r = await master.api('POST', '/api/runs', { project: 'p', spider: 's' });
      if (r.status !== 201) throw new Error(`dispatch: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    };
    for (let i = 0; i < 20; i++) await one(); // warm-up
    return await throughput(one);
  } finally {
    await master.stop();
    fake.stop();
  }
}

async function dispatch(): Promise<void> {
  console.log('\n1. dispatch throughput over 10 simulated nodes (POST /api/runs: least-load choice, the run recorded, schedule.json to the node; 300 one at a time, then 30 × 20 in flight):');
  const out: Record<string, { seq: number; par: number }> = {};
  for (const e of ENGINES) out[e] = await dispatchOn(e);
  console.log(`  ${''.padEnd(22)} ${'SQLite'.padStart(12)} ${'PostgreSQL'.padStart(12)}`);
  console.log(`  ${'one at a time'.padEnd(22)} ${(out.sqlite!.seq.toFixed(0) + ' runs/s').padStart(12)} ${(out.postgres!.seq.toFixed(0) + ' runs/s').padStart(12)}`);
  console.log(`  ${'20 in flight'.padEnd(22)} ${(out.sqlite!.par.toFixed(0) + ' runs/s').padStart(12)} ${(out.postgres!.par.toFixed(0) + ' runs/s').padStart(12)}`);
}

// ---- 2. history: pages and API at 1 000 and 1 000 000 runs ----

/**
 * `runs` finished runs, one every 100 s, the newest ending now (the last 24 hours hold the same 864
 * runs at both sizes: only the length of the history differs), in one INSERT … SELECT; project 'p4'
 * is quiet (1 run in 1 000 at 1 000 000, 1 in 10 at 1 000); then 20 running and 10 pending.
 */
async function fillHistory(database: string, runs: number): Promise<number> {
  const db = await openSchema(database);
  const now = Date.now();
  const quiet = runs >= 100_000 ? 1000 : 10;
  const first = now - runs * 100_000;
  const t0 = performance.now();
  try {
    for (let p = 0; p < 5; p++) await db.run(`INSERT INTO versions (project, version, kind, size, sha256, uploaded_at) VALUES (?, '1', 'generic', 1, 'x', 0)`, [`p${p}`]);
    const cols = 'id, job, project, spider, version, node_id, node, state, outcome, created_at, dispatched_at, started_at, ended_at, exit_code, items_count, error_count';
    if (db.dialect === 'postgres') {
      // The per-row count trigger is off for the bulk load (one hot row updated a million times in
      // one transaction); the counts are set from the table afterwards.
      await db.exec(`
        ALTER TABLE runs DISABLE TRIGGER USER;
        INSERT INTO runs (${cols})
          SELECT i, 'job' || lpad(to_hex(i), 8, '0'), CASE WHEN i % ${quiet} = 0 THEN 'p4' ELSE 'p' || (i % 4) END, 's', '1', 1, 'n1',
                 'finished', 'succeeded', e - 2000, e - 2000, e - 1500, e, 0, 3, 0
          FROM (SELECT i, ${first}::bigint + i::bigint * 100000 AS e FROM generate_series(1, ${runs}) AS i) AS g;
        INSERT INTO runs (${cols})
          SELECT i, 'job' || lpad(to_hex(i), 8, '0'), 'p' || (i % 4), 's', '1', 1, 'n1', CASE WHEN i <= ${runs + 20} THEN 'running' ELSE 'pending' END, NULL,
                 ${now} - 2000, ${now} - 2000, CASE WHEN i <= ${runs + 20} THEN ${now} - 1500 END, NULL, NULL, 3, 0
          FROM generate_series(${runs + 1}, ${runs + 30}) AS i;
        ALTER TABLE runs ENABLE TRIGGER USER;
        DELETE FROM run_counts;
        INSERT INTO run_counts (state, n) SELECT state, COUNT(*) FROM runs GROUP BY state;
        SELECT setval(pg_get_serial_sequence('runs', 'id'), (SELECT MAX(id) FROM runs));
      `);
      // What autovacuum does soon after a bulk insert (statistics, visibility map).
      await db.exec('VACUUM ANALYZE runs');
    } else {
      await db.tx(async () => {
        await db.run(`WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ${runs})
          INSERT INTO runs (${cols})
          SELECT i, printf('job%08x', i), CASE WHEN i % ${quiet} = 0 THEN 'p4' ELSE 'p' || (i % 4) END, 's', '1', 1, 'n1',
                 'finished', 'succeeded', e - 2000, e - 2000, e - 1500, e, 0, 3, 0
          FROM (SELECT i, ${first} + i * 100000 AS e FROM g)`);
        await db.run(`WITH RECURSIVE g(i) AS (SELECT ${runs + 1} UNION ALL SELECT i + 1 FROM g WHERE i < ${runs + 30})
          INSERT INTO runs (${cols})
          SELECT i, printf('job%08x', i), 'p' || (i % 4), 's', '1', 1, 'n1', CASE WHEN i <= ${runs + 20} THEN 'running' ELSE 'pending' END, NULL,
                 ${now} - 2000, ${now} - 2000, CASE WHEN i <= ${runs + 20} THEN ${now} - 1500 END, NULL, NULL, 3, 0
          FROM g`);
      });
      await db.exec('ANALYZE');
    }
  } finally {
    await db.close();
  }
  return (performance.now() - t0) / 1000;
}

const HISTORY_PATHS = ['/api/runs?limit=50', '/listjobs.json', '/api/status', '/jobs', '/'] as const;
type Timing = { median: number; p95: number; client: number };

async function historyAt(engine: Engine, runs: number): Promise<Timing[]> {
  const database = await newDatabase(engine);
  const fillS = await fillHistory(database, runs);
  const master = await startTracked({ args: ['--database', database, '--history-days', '0', '--history-max-runs', '0'] });
  try {
    const token = (await master.api<{ token: string }>('POST', '/api/tokens', { name: 'bench' })).body.token;
    const api = { Authorization: `Bearer ${token}` };
    const loginPage = await fetch(`${master.url}/login`);
    const csrfCookie = /sp_login_csrf=([^;]+)/.exec(loginPage.headers.get('set-cookie') ?? '')![1]!;
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await loginPage.text())![1]!;
    const login = await fetch(`${master.url}/login`, {
      method: 'POST', redirect: 'manual', headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: `sp_login_csrf=${csrfCookie}` },
      body: new URLSearchParams({ username: ADMIN.user, password: ADMIN.password, _csrf: csrf, next: '/' }),
    });
    const page = { Cookie: `sp_session=${/sp_session=([^;]+)/.exec(login.headers.get('set-cookie') ?? '')![1]!}` };
    const out: Timing[] = [];
    for (const path of HISTORY_PATHS) {
      const headers = path === '/jobs' || path === '/' ? page : api;
      const server: number[] = [];
      const client: number[] = [];
      for (let i = 0; i < 23; i++) {
        const t0 = performance.now();
        const r = await fetch(master.url + path, { headers });
        const body = await r.text();
        const wall = performance.now() - t0;
        if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status} ${body.slice(0, 200)}`);
        if ((path === '/jobs' || path === '/') && !/<html/i.test(body)) throw new Error(`${path}: not the HTML page`);
        if (i < 3) continue; // warm-up
        server.push(Number(/dur=([\d.]+)/.exec(r.headers.get('server-timing') ?? '')![1]));
        client.push(wall);
      }
      out.push({ median: median(server), p95: p95(server), client: median(client) });
    }
    console.log(`  (${engine}: ${runs.toLocaleString('en')} runs filled in ${f1(fillS)} s)`);
    return out;
  } finally {
    await master.stop();
    await dropDatabase(database);
  }
}

async function history(): Promise<void> {
  console.log('\n2. jobs pages and API with 1 000 vs 1 000 000 runs of history: server time (Server-Timing), median / p95 of 20 requests after 3 warm-ups:');
  const res: Record<string, Timing[]> = {};
  for (const e of ENGINES) for (const n of [1000, 1_000_000]) res[`${e}${n}`] = await historyAt(e, n);
  const cell = (t: Timing) => `${f1(t.median)} / ${f1(t.p95)}`;
  console.log(`  ${'request'.padEnd(20)} ${'SQLite 1k'.padStart(13)} ${'SQLite 1M'.padStart(13)} ${'ratio'.padStart(6)}   ${'PG 1k'.padStart(13)} ${'PG 1M'.padStart(13)} ${'ratio'.padStart(6)}  (ms, median / p95)`);
  HISTORY_PATHS.forEach((path, i) => {
    const [a, b, c, d] = [res.sqlite1000![i]!, res.sqlite1000000![i]!, res.postgres1000![i]!, res.postgres1000000![i]!];
    console.log(`  ${(path === '/' ? '/ (dashboard)' : path).padEnd(20)} ${cell(a).padStart(13)} ${cell(b).padStart(13)} ${((b.median / a.median).toFixed(2) + 'x').padStart(6)}   ` +
      `${cell(c).padStart(13)} ${cell(d).padStart(13)} ${((d.median / c.median).toFixed(2) + 'x').padStart(6)}`);
  });
  console.log(`  client-side median (HTTP over loopback included), 1M runs: ${HISTORY_PATHS.map((p, i) => `${p === '/' ? 'dashboard' : p} ${f1(res.sqlite1000000![i]!.client)} / ${f1(res.postgres1000000![i]!.client)} ms`).join(', ')} (SQLite / PostgreSQL)`);
}

// ---- 3. heartbeats for 1 000 nodes ----

async function heartbeatOn(engine: Engine, n: number, seconds: number): Promise<string> {
  const fake = await fakeNodes();
  const dataDir = benchDir('spiderplane-habench-hb-');
  const database = engine === 'sqlite' ? `sqlite:${join(dataDir, 'master.db')}` : await freshDatabase();
  const master = await Master.start(masterConfig({ port: 0, data_dir: dataDir, database, admin_user: 'admin', admin_password: 'admin-password-1', cluster_token: 't', heartbeat_interval: 5 }));
  let stopped = false;
  const stopMaster = async () => { if (!stopped) { stopped = true; await master.stop(); } };
  cleanups.push(stopMaster);
  const origLog = console.log;
  const origErr = console.error;
  console.log = () => undefined; // "node X is online" × n
  let errors = 0;
  console.error = () => { errors++; };
  try {
    for (let i = 0; i < n; i++) await master.addNode({ url: `http://127.0.0.1:${fake.port}/n${i}`, name: `fake${i}`, username: null, password: null });
    await waitFor('fake nodes online', async () => ((await master.nodes.all()).filter((x) => x.status === 'online').length === n ? true : undefined), 300_000, 1000);
    await sleep(10_000);
    const errorsBefore = errors;
    const pg0 = cluster && engine === 'postgres' ? cpuSeconds(cluster.postmasterPid) : 0;
    const w = await measureInProcess(seconds);
    const pgCpu = cluster && engine === 'postgres' ? ((cpuSeconds(cluster.postmasterPid) - pg0) / w.wallSeconds) * 100 : null;
    const samples = (await master.sql.get<{ c: number | string }>(`SELECT COUNT(*) AS c FROM node_metrics`))!.c;
    return `CPU ${f1(w.cpuPercent)} % of one core${pgCpu === null ? '' : ` (+ PostgreSQL's processes ${f1(pgCpu)} %)`}, RSS max ${w.rssMaxMb.toFixed(0)} MB, ` +
      `event-loop lag p99 ${f1(w.lagP99Ms)} ms, max ${f1(w.lagMaxMs)} ms over ${w.wallSeconds.toFixed(0)} s (${samples} samples stored; ${errors - errorsBefore} errors logged; load ${load()})`;
  } finally {
    console.log = origLog;
    console.error = origErr;
    await stopMaster();
    fake.stop();
  }
}

async function heartbeat(): Promise<void> {
  const n = Number(process.env.HB_NODES ?? 1000);
  console.log(`\n3. master heartbeating ${n} simulated nodes every 5 s (listjobs + metrics.json per node, samples stored), master in this process, measured over ${SECONDS} s after 10 s of settling:`);
  for (const e of ENGINES) console.log(`  ${e === 'sqlite' ? 'SQLite    ' : 'PostgreSQL'}: ${await heartbeatOn(e, n, SECONDS)}`);
}

// ---- 4. takeover ----

interface StatusView { leader: boolean; master_id: string; epoch: number }
async function statusOf(m: MasterHandle): Promise<StatusView | null> {
  try {
    const r = await fetch(`${m.url}/api/status`, { headers: { Authorization: basic(ADMIN.user, ADMIN.password) }, signal: AbortSignal.timeout(2000) });
    return r.ok ? (await r.json()) as StatusView : null;
  } catch { return null; }
}
async function leaderAmong(ms: MasterHandle[]): Promise<MasterHandle | undefined> {
  const s = await Promise.all(ms.map(statusOf));
  const leaders = ms.filter((_, i) => s[i]?.leader === true);
  return leaders.length === 1 ? leaders[0] : undefined;
}

async function takeoverWith(lease: number): Promise<number[]> {
  const database = await freshDatabase();
  const start = () => startTracked({ args: ['--database', database, '--leader-lease', String(lease), '--heartbeat-interval', '5'] });
  const masters: MasterHandle[] = [];
  for (let i = 0; i < 3; i++) masters.push(await start());
  const times: number[] = [];
  try {
    for (let k = 0; k < KILLS; k++) {
      const leader = await waitFor('exactly one leader', () => leaderAmong(masters), 120_000, 200);
      // A standby that has just started may not have seen a lease yet: let every standby see this one.
      await sleep(2 * lease * 1000 / 5 + 500);
      const rest = masters.filter((m) => m !== leader);
      const t0 = performance.now();
      const killed = leader.kill9();
      const next = await waitFor('another master leads', async () => (await Promise.all(rest.map(statusOf))).some((s) => s?.leader === true) ? true : undefined, 120_000, 100);
      void next;
      times.push((performance.now() - t0) / 1000);
      await killed;
      masters.splice(masters.indexOf(leader), 1);
      masters.push(await start()); // three again
    }
  } finally {
    for (const m of masters) await m.kill9().catch(() => undefined);
  }
  return times;
}

async function takeover(): Promise<void> {
  console.log(`\n4. takeover: three masters on one PostgreSQL, kill -9 of the leader until another reports "leader": true on /api/status (polled every 100 ms), ${KILLS} kills each (a fresh master started after each kill):`);
  for (const lease of [10, 3]) {
    const t = await takeoverWith(lease);
    console.log(`  --leader-lease ${String(lease).padStart(2)}${lease === 10 ? ' (default)' : '          '}: median ${f1(median(t))} s (each: ${t.map(f1).join(', ')} s); goal: within 15 s`);
  }
}

// ---- main ----

console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load average ${load()} at start (shared with other work); ${new Date().toISOString()}`);
try {
  if (want('dispatch')) await dispatch();
  if (want('history')) await history();
  if (want('heartbeat')) await heartbeat();
  if (want('takeover')) await takeover();
  const c = cluster as Cluster | null;
  if (c) console.log(`\nPostgreSQL ${c.version} (throwaway cluster: fsync on, synchronous_commit off, default shared_buffers), SQLite in WAL mode with synchronous=NORMAL; masters as their own processes except in 3.`);
} catch (e) {
  console.error(e);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
console.log(`load average at the end: ${load()}`);

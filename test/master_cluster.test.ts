// The master with a real cluster: one master process and real slave daemons on loopback.
// Nodes joining and being added by URL, deploys, least-load dispatch, failover when a node dies
// (with and without its spider), a late-joining node catching up, and the master's Scrapyd API.
// Run: cd /work/main && npx tsx --test test/master_cluster.test.ts
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { SqlDb } from '../master/store/sql_db.ts';
import { startMaster, basic, ADMIN, CLUSTER_TOKEN, type MasterHandle, openDatabaseOf } from './helpers/master_process.ts';
import { startSlave, tempDir, getJson, postForm, waitFor, type SlaveHandle, type Json } from './helpers/slave_process.ts';
import { buildDemoEgg, buildNodePackage, DEMO_PROJECT, DEMO_SPIDERS } from './helpers/fixtures.ts';
import { hardKill9, isAlive, killGroup, waitGone } from './helpers/runner_checks.ts';

// ---------------------------------------------------------------------------------------------
// Shapes of the master's API

interface NodeView {
  name: string; url: string; source: string; status: string; draining: boolean; extensions: boolean; max_proc: number | null;
  running: number; pending: number; last_heartbeat_at: number | null; last_error: string | null; has_credentials: boolean;
  metrics: { cpu_count: number; memory: { total_bytes: number }; max_proc: number; load: number[]; uptime_seconds: number } | null;
}
interface RunView {
  job: string; project: string; spider: string; version: string | null; node: string | null; state: string; outcome: string | null;
  attempt: number; retries_left: number; retry_of: unknown; retry_of_job?: string | null; note: string | null; created_by: string | null; args: Record<string, string>;
}
interface DeploymentView {
  id: number; project: string; version: string; reason: string; finished_at: number | null;
  targets: Array<{ node: string; state: string; message: string | null; spiders: number | null }>;
}
interface ListedJobs { pending: Array<{ id: string }>; running: Array<{ id: string; pid: number }>; finished: Array<{ id: string }> }

// Short thresholds: a heartbeat every 0.5 s, a node is offline after 3 s of silence.
const HEARTBEAT_MS = 500;
const OFFLINE_AFTER_MS = 3000;
const MASTER_ARGS = ['--heartbeat-interval', String(HEARTBEAT_MS / 1000), '--offline-after', String(OFFLINE_AFTER_MS / 1000), '--heartbeat-timeout', '1'];
/** A failover must be complete within offline-after plus a few heartbeats (generous: a loaded 2-core machine). */
const FAILOVER_WITHIN_MS = OFFLINE_AFTER_MS + 20 * HEARTBEAT_MS;
const TOKEN_HEADER = { Authorization: `Bearer ${CLUSTER_TOKEN}` };
const ADMIN_AUTH = basic(ADMIN.user, ADMIN.password);
const PROJECT = 'gen';
/** A count run that lasts as long as the test needs it (cancelled or killed at the end). */
const LONG = { n: '100000', interval_ms: '500' };

const work = tempDir('spiderplane-cluster-test-');
let master: MasterHandle;
let pkg: Buffer;
/** Current daemon of each cluster node, by node name. */
const slaves = new Map<string, SlaveHandle>();
const slaveDirs = new Map<string, string>();
const everySlave = new Set<SlaveHandle>();
/** Spider pids that may outlive their daemon: killed at the end whatever happens. */
const spiderPids = new Set<number>();
/** Left by one test for a later one to check (so a failed check there does not hide the rest). */
const carried: { burstJobs: string[]; orphanC?: { job: string; pid: number } } = { burstJobs: [] };

async function startNode(name: string, extra: string[] = []): Promise<SlaveHandle> {
  if (!slaveDirs.has(name)) slaveDirs.set(name, tempDir(`spiderplane-cluster-${name}-`));
  const h = await startSlave({
    dataDir: slaveDirs.get(name)!,
    args: ['--master', master.url, '--cluster-token', CLUSTER_TOKEN, '--node-name', name, '--max-proc', '2', ...extra],
  });
  everySlave.add(h);
  slaves.set(name, h);
  return h;
}

const slaveOf = (name: string): SlaveHandle => {
  const h = slaves.get(name);
  assert.ok(h, `no slave process for ${name}`);
  return h;
};

async function ok<T = Record<string, unknown>>(method: string, path: string, body?: unknown, status = 200): Promise<T> {
  const r = await master.api<T>(method, path, body);
  assert.equal(r.status, status, `${method} ${path} -> ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body;
}

async function nodes(): Promise<NodeView[]> {
  return (await ok<{ nodes: NodeView[] }>('GET', '/api/nodes')).nodes;
}

async function node(name: string): Promise<NodeView | undefined> {
  return (await nodes()).find((n) => n.name === name);
}

async function waitOnline(names: string[], timeoutMs = 60_000): Promise<NodeView[]> {
  return waitFor(`nodes ${names.join(', ')} online`, async () => {
    const all = await nodes();
    const those = names.map((n) => all.find((x) => x.name === n));
    return those.every((n) => n?.status === 'online') ? (those as NodeView[]) : undefined;
  }, timeoutMs);
}

/**
 * Waits until the master has had `count` more good heartbeats of the node: "several heartbeats"
 * as a state, however slow the machine (a poll that misses one only makes the wait longer).
 */
async function heartbeats(name: string, count: number): Promise<void> {
  let last = (await node(name))?.last_heartbeat_at ?? null;
  let seen = 0;
  await waitFor(`${count} heartbeats of ${name}`, async () => {
    const t = (await node(name))?.last_heartbeat_at ?? null;
    if (t !== null && t !== last) { seen++; last = t; }
    return seen >= count ? true : undefined;
  }, 60_000, 100);
}

async function run(job: string): Promise<RunView> {
  return (await ok<{ run: RunView }>('GET', `/api/runs/${job}`)).run;
}

async function allRuns(): Promise<RunView[]> {
  return (await ok<{ runs: RunView[] }>('GET', `/api/runs?project=${PROJECT}&limit=1000`)).runs;
}

async function dispatch(body: Record<string, unknown>): Promise<RunView[]> {
  const r = await master.api<{ runs: RunView[]; error?: string }>('POST', '/api/runs', { project: PROJECT, spider: 'count', ...body });
  assert.equal(r.status, 201, `POST /api/runs ${JSON.stringify(body)} -> ${r.status}: ${JSON.stringify(r.body)}`);
  for (const x of r.body.runs) assert.equal(x.state, 'pending', `a dispatched run is pending on its node: ${JSON.stringify(x)}`);
  return r.body.runs;
}

function countBy(runs: RunView[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of runs) out[r.node!] = (out[r.node!] ?? 0) + 1;
  return out;
}

async function slaveJobs(h: SlaveHandle, project?: string): Promise<ListedJobs & Json> {
  const r = await getJson(h.url, '/listjobs.json', project ? { project } : {}, TOKEN_HEADER);
  assert.equal(r.status, 'ok', JSON.stringify(r));
  return r as ListedJobs & Json;
}

async function slaveVersions(h: SlaveHandle, project: string): Promise<string[]> {
  const r = await getJson(h.url, '/listversions.json', { project }, TOKEN_HEADER);
  return (r.versions as string[] | undefined) ?? [];
}

/** Cancels every active run of the project and waits until the master and all nodes are idle. */
async function stopAllAndWaitIdle(): Promise<void> {
  await ok('POST', '/api/runs/stop', { project: PROJECT });
  await waitFor('no active runs', async () => {
    const r = await ok<{ total: number }>('GET', `/api/runs?state=active&project=${PROJECT}`);
    return r.total === 0 ? true : undefined;
  }, 60_000, 200);
  await waitFor('every online node idle', async () => {
    const all = (await nodes()).filter((n) => n.status === 'online');
    return all.every((n) => n.running === 0 && n.pending === 0) ? true : undefined;
  }, 60_000, 200);
  // One more heartbeat round, so the balancer's own count of recent dispatches starts from zero.
  await new Promise((r) => setTimeout(r, HEARTBEAT_MS * 2));
}

/** Cancels every active run but one (a run a later test still needs running). */
async function stopAllExcept(keep: string | undefined): Promise<void> {
  const active = await ok<{ runs: RunView[] }>('GET', `/api/runs?state=active&project=${PROJECT}&limit=1000`);
  for (const r of active.runs) if (r.job !== keep) await ok('POST', `/api/runs/${r.job}/cancel`);
  await waitFor('only the kept run active', async () => {
    const left = await ok<{ runs: RunView[] }>('GET', `/api/runs?state=active&project=${PROJECT}&limit=1000`);
    return left.runs.every((r) => r.job === keep) ? true : undefined;
  }, 60_000, 200);
}

async function uploadToMaster(version: string): Promise<{ status: number; body: { project: string; version: string; deployment: DeploymentView; error?: string } }> {
  const form = new FormData();
  form.set('version', version);
  form.set('egg', new Blob([new Uint8Array(pkg)]), 'node_package.zip');
  const r = await fetch(`${master.url}/api/projects/${PROJECT}/versions?wait=1`, { method: 'POST', body: form, headers: { Authorization: ADMIN_AUTH } });
  return { status: r.status, body: (await r.json()) as { project: string; version: string; deployment: DeploymentView } };
}

/** A fresh read-only look at the master's database (the API shows no run's row id). */
async function masterDb<T>(f: (db: SqlDb) => Promise<T>): Promise<T> {
  const db = await openDatabaseOf(master);
  try {
    return await f(db);
  } finally {
    await db.close();
  }
}

before(async () => {
  pkg = readFileSync(await buildNodePackage(work));
  master = await startMaster({ args: MASTER_ARGS });
  await Promise.all(['n1', 'n2', 'n3'].map((n) => startNode(n)));
});

after(async () => {
  for (const h of everySlave) {
    if (h.proc.exitCode === null && h.proc.signalCode === null) {
      const jobs = await slaveJobs(h).catch(() => null);
      for (const j of jobs?.running ?? []) if (j.pid) spiderPids.add(j.pid);
      await hardKill9(h).catch(() => undefined);
    }
  }
  for (const pid of spiderPids) killGroup(pid);
  if (master && master.proc.exitCode === null && master.proc.signalCode === null) await master.kill9().catch(() => undefined);
  await rm(work, { recursive: true, force: true });
  for (const d of slaveDirs.values()) await rm(d, { recursive: true, force: true });
  if (master) await rm(master.dataDir, { recursive: true, force: true });
});

describe('master with a real cluster', () => {
  // -------------------------------------------------------------------------------------------
  test('nodes: slaves announce themselves; nodes added by URL; bad input refused', async () => {
    const three = await waitOnline(['n1', 'n2', 'n3']);
    for (const n of three) {
      assert.equal(n.source, 'announced');
      assert.equal(n.url, slaveOf(n.name).url, `${n.name} is known by the URL it announced`);
      assert.equal(n.draining, false);
      assert.equal(n.has_credentials, false);
      assert.equal(typeof n.last_heartbeat_at, 'number');
    }
    // Metrics come with the heartbeats (the first one may have been taken before they were sampled).
    const withMetrics = await waitFor('metrics of n1..n3', async () => {
      const all = (await nodes()).filter((n) => ['n1', 'n2', 'n3'].includes(n.name));
      return all.length === 3 && all.every((n) => n.metrics !== null && n.extensions) ? all : undefined;
    });
    for (const n of withMetrics) {
      assert.ok(n.metrics!.cpu_count >= 1, JSON.stringify(n.metrics));
      assert.ok(n.metrics!.memory.total_bytes > 0, JSON.stringify(n.metrics));
      assert.equal(n.metrics!.max_proc, 2);
      assert.equal(n.max_proc, 2, 'capacity from the slave');
      assert.equal(n.metrics!.load.length, 3);
    }
    const detail = await ok<{ node: NodeView; events: Array<{ status: string }>; metrics: unknown[] }>('GET', '/api/nodes/n1');
    assert.equal(detail.node.name, 'n1');
    assert.ok(detail.events.some((e) => e.status === 'online'), JSON.stringify(detail.events));
    assert.ok(detail.metrics.length >= 1, 'metric samples are kept per heartbeat');

    // A slave with its own basic auth, added by URL (it does not announce itself).
    const authSlave = await startSlave({ dataDir: tempDir('spiderplane-cluster-auth-'), args: ['--username', 'u', '--password', 'p', '--node-name', 'authnode', '--max-proc', '2'] });
    everySlave.add(authSlave);
    slaveDirs.set('authnode', authSlave.dataDir);

    // Wrong credentials: the node is registered but never goes online; its last error says 401.
    const wrong = await master.api<{ node: NodeView }>('POST', '/api/nodes', { url: authSlave.url, name: 'badauth', username: 'u', password: 'wrong' });
    assert.equal(wrong.status, 201, JSON.stringify(wrong.body));
    assert.equal(wrong.body.node.has_credentials, true);
    assert.equal(JSON.stringify(wrong.body).includes('wrong'), false, 'the password is never shown');
    const refused = await waitFor('badauth to record a 401', async () => {
      const n = await node('badauth');
      return n?.last_error?.includes('401') ? n : undefined;
    });
    assert.notEqual(refused.status, 'online');
    await new Promise((r) => setTimeout(r, HEARTBEAT_MS * 3));
    const still = (await node('badauth'))!;
    assert.notEqual(still.status, 'online', 'a node refusing our credentials never goes online');
    assert.match(still.last_error ?? '', /401/);
    await ok('DELETE', '/api/nodes/badauth');
    assert.equal(await node('badauth'), undefined);

    // Right credentials: online.
    const good = await master.api<{ node: NodeView }>('POST', '/api/nodes', { url: authSlave.url + '/', name: 'authnode', username: 'u', password: 'p' });
    assert.equal(good.status, 201, JSON.stringify(good.body));
    assert.equal(good.body.node.url, authSlave.url, 'the URL is kept without its trailing slash');
    assert.equal(good.body.node.source, 'added');
    const authOnline = (await waitOnline(['authnode']))[0]!;
    assert.equal(authOnline.has_credentials, true);
    assert.equal(authOnline.last_error, null);

    // Bad input: 400 with a message that says what is wrong; nothing registered.
    const before = (await nodes()).map((n) => n.name).sort();
    const n1url = slaveOf('n1').url;
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ url: 'not a url', name: 'x1' }, /not a URL/],
      [{ url: 'ftp://127.0.0.1:6800', name: 'x2' }, /http or https/],
      [{ url: 'http://u:p@127.0.0.1:6801', name: 'x3' }, /credentials/],
      [{ url: n1url, name: 'x4' }, /already registered as node 'n1'/],
      [{ url: n1url + '/', name: 'x5' }, /already registered as node 'n1'/],
      [{ url: 'http://127.0.0.1:1', name: 'n1' }, /named 'n1' already exists/],
      [{ url: 'http://127.0.0.1:2', name: 'x6', username: 'u' }, /both username and password/],
      [{ url: 'http://127.0.0.1:3', name: 'x7', password: 'p' }, /both username and password/],
      [{ name: 'x8' }, /'url' is required/],
      [{ url: 'http://127.0.0.1:4', name: 'bad name!' }, /may only hold/],
    ];
    for (const [body, re] of cases) {
      const r = await master.api<{ error: string }>('POST', '/api/nodes', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.status} ${JSON.stringify(r.body)}`);
      assert.match(r.body.error, re, JSON.stringify(body));
    }
    assert.deepEqual((await nodes()).map((n) => n.name).sort(), before, 'refused nodes are not registered');

    // Announcing needs the cluster token, and never takes the name of an online node.
    const announce = (body: unknown, auth?: string) => fetch(`${master.url}/api/cluster/announce`, {
      method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json', ...(auth ? { Authorization: auth } : {}) },
    });
    assert.equal((await announce({ url: 'http://127.0.0.1:9', name: 'ghost' })).status, 401);
    assert.equal((await announce({ url: 'http://127.0.0.1:9', name: 'ghost' }, 'Bearer not-the-token')).status, 401);
    assert.equal((await announce({ url: 'http://127.0.0.1:9', name: 'ghost' }, ADMIN_AUTH)).status, 401, 'a user is not a slave');
    const stolen = await announce({ url: 'http://127.0.0.1:9', name: 'n1' }, `Bearer ${CLUSTER_TOKEN}`);
    assert.equal(stolen.status, 400);
    assert.match(((await stolen.json()) as { error: string }).error, /already used by the online node/);
    assert.equal((await node('n1'))!.url, n1url, 'n1 keeps its URL');
    assert.deepEqual((await nodes()).map((n) => n.name).sort(), before);

    // Done with the auth node: removed, so the rest of the file works with the three announced nodes.
    await ok('DELETE', '/api/nodes/authnode');
    assert.equal((await master.api('DELETE', '/api/nodes/authnode')).status, 404);
    await hardKill9(authSlave);
    assert.deepEqual((await nodes()).map((n) => n.name).sort(), ['n1', 'n2', 'n3']);
  });

  // -------------------------------------------------------------------------------------------
  test('deploy: an upload reaches every online node', async () => {
    const up = await uploadToMaster('1.0');
    assert.equal(up.status, 201, JSON.stringify(up.body));
    assert.equal(up.body.project, PROJECT);
    assert.equal(up.body.version, '1_0', 'stored the way Scrapyd stores it');
    const d = up.body.deployment;
    assert.equal(d.reason, 'upload');
    assert.notEqual(d.finished_at, null, '?wait=1 answers when the deploy is over');
    assert.deepEqual(d.targets.map((t) => t.node).sort(), ['n1', 'n2', 'n3']);
    for (const t of d.targets) {
      assert.equal(t.state, 'ok', JSON.stringify(t));
      assert.equal(t.spiders, 4, JSON.stringify(t));
    }
    const again = await ok<{ deployment: DeploymentView }>('GET', `/api/deployments/${d.id}`);
    assert.deepEqual(again.deployment, d);
    assert.equal((await master.api('GET', '/api/deployments/999999')).status, 404);

    // A second version, so a node joining later has more than one to catch up on.
    const up2 = await uploadToMaster('1.1');
    assert.equal(up2.status, 201, JSON.stringify(up2.body));
    assert.ok(up2.body.deployment.targets.every((t) => t.state === 'ok'), JSON.stringify(up2.body.deployment));

    const projects = (await ok<{ projects: Array<{ project: string; versions: Array<{ version: string; kind: string; spiders: string[]; nodes: string[] }> }> }>('GET', '/api/projects')).projects;
    const gen = projects.find((p) => p.project === PROJECT);
    assert.ok(gen, JSON.stringify(projects));
    assert.deepEqual(gen.versions.map((v) => v.version).sort(), ['1_0', '1_1']);
    for (const v of gen.versions) {
      assert.equal(v.kind, 'generic');
      assert.deepEqual(v.spiders, ['count', 'crash', 'hello', 'shell']);
      assert.deepEqual(v.nodes, ['n1', 'n2', 'n3'], `version ${v.version} is on every node`);
    }
    for (const name of ['n1', 'n2', 'n3']) {
      assert.deepEqual(await slaveVersions(slaveOf(name), PROJECT), ['1_0', '1_1'], `${name}'s own listversions.json`);
    }
    const recent = (await ok<{ deployments: DeploymentView[] }>('GET', `/api/deployments?project=${PROJECT}`)).deployments;
    assert.deepEqual(recent.map((x) => x.version), ['1_1', '1_0']);
  });

  // -------------------------------------------------------------------------------------------
  test('dispatch: least load spreads a burst, avoids busy and draining nodes; explicit targets', async () => {
    // A burst of 30 over three equal idle nodes: 10 ± 1 each.
    const burst = (await Promise.all(Array.from({ length: 30 }, () => dispatch({ args: { n: '50', interval_ms: '200' }, target: 'auto' })))).flat();
    assert.equal(burst.length, 30);
    assert.equal(new Set(burst.map((r) => r.job)).size, 30, 'every run has its own job id');
    carried.burstJobs = burst.map((r) => r.job);
    const spread = countBy(burst);
    console.log(`# burst of 30: ${JSON.stringify(spread)}`);
    assert.deepEqual(Object.keys(spread).sort(), ['n1', 'n2', 'n3'], JSON.stringify(spread));
    for (const [n, c] of Object.entries(spread)) assert.ok(c >= 9 && c <= 11, `node ${n} got ${c} of 30: ${JSON.stringify(spread)}`);
    // The nodes really have them.
    for (const name of ['n1', 'n2', 'n3']) {
      const jobs = await slaveJobs(slaveOf(name), PROJECT);
      const onNode = new Set([...jobs.pending, ...jobs.running, ...jobs.finished].map((j) => j.id));
      for (const r of burst.filter((x) => x.node === name)) assert.ok(onNode.has(r.job), `${r.job} on ${name}`);
    }
    await stopAllAndWaitIdle();

    // A busy node gets fewer.
    const busy = (await Promise.all(Array.from({ length: 6 }, () => dispatch({ args: LONG, target: { mode: 'node', node: 'n1' } })))).flat();
    assert.ok(busy.every((r) => r.node === 'n1'));
    await waitFor('the master to see n1 busy', async () => {
      const n1 = await node('n1');
      return n1 && n1.running + n1.pending === 6 ? true : undefined;
    });
    await new Promise((r) => setTimeout(r, HEARTBEAT_MS * 2));
    const twelve = (await Promise.all(Array.from({ length: 12 }, () => dispatch({ args: LONG, target: 'auto' })))).flat();
    const c12 = countBy(twelve);
    console.log(`# 12 with n1 busy: ${JSON.stringify(c12)}`);
    assert.ok((c12.n1 ?? 0) < (c12.n2 ?? 0) && (c12.n1 ?? 0) < (c12.n3 ?? 0), `the busy n1 gets fewer than each other node: ${JSON.stringify(c12)}`);
    await stopAllAndWaitIdle();

    // {mode: nodes, count: 2}: two distinct nodes.
    const two = await dispatch({ args: { n: '1', interval_ms: '10' }, target: { mode: 'nodes', count: 2 } });
    assert.equal(two.length, 2);
    assert.equal(new Set(two.map((r) => r.node)).size, 2, JSON.stringify(two.map((r) => r.node)));
    // 'all': one per online node.
    const all = await dispatch({ args: { n: '1', interval_ms: '10' }, target: 'all' });
    assert.deepEqual(all.map((r) => r.node).sort(), ['n1', 'n2', 'n3']);
    // More nodes than there are: refused, nothing dispatched.
    const tooMany = await master.api<{ error: string }>('POST', '/api/runs', { project: PROJECT, spider: 'count', target: { mode: 'nodes', count: 4 } });
    assert.equal(tooMany.status, 400, JSON.stringify(tooMany.body));
    assert.match(tooMany.body.error, /only 3 eligible/);
    // An unknown node, project, spider or version: 400.
    for (const [body, re] of [
      [{ project: PROJECT, spider: 'count', target: { mode: 'node', node: 'nope' } }, /node 'nope' not found/],
      [{ project: 'nosuch', spider: 'count' }, /project 'nosuch' not found/],
      [{ project: PROJECT, spider: 'nosuch' }, /spider 'nosuch' not found/],
      [{ project: PROJECT, spider: 'count', version: '9.9' }, /version '9\.9' not found/],
      [{ project: PROJECT, spider: 'count', target: { mode: 'sideways' } }, /'mode' must be one of/],
    ] as Array<[Record<string, unknown>, RegExp]>) {
      const r = await master.api<{ error: string }>('POST', '/api/runs', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.status} ${JSON.stringify(r.body)}`);
      assert.match(r.body.error, re);
    }

    // A draining node is never picked automatically, nor by name.
    const drained = await ok<{ node: NodeView }>('POST', '/api/nodes/n3/drain', { draining: true });
    assert.equal(drained.node.draining, true);
    const autoRuns = (await Promise.all(Array.from({ length: 6 }, () => dispatch({ args: LONG, target: 'auto' })))).flat();
    assert.equal(countBy(autoRuns).n3, undefined, `draining n3 got none: ${JSON.stringify(countBy(autoRuns))}`);
    const allWhileDraining = await dispatch({ args: { n: '1', interval_ms: '10' }, target: 'all' });
    assert.deepEqual(allWhileDraining.map((r) => r.node).sort(), ['n1', 'n2']);
    const toDrained = await master.api<{ error: string }>('POST', '/api/runs', { project: PROJECT, spider: 'count', target: { mode: 'node', node: 'n3' } });
    assert.equal(toDrained.status, 400);
    assert.match(toDrained.body.error, /draining/);
    assert.equal((await ok<{ node: NodeView }>('POST', '/api/nodes/n3/drain', { draining: false })).node.draining, false);
    await stopAllAndWaitIdle();
  });

  // -------------------------------------------------------------------------------------------
  test('failover: a dead node\'s run is lost and re-run elsewhere; the orphan of a killed daemon is stopped by its keeper, so a returning node runs no duplicate', async () => {
    // --- A: the node dies with its spider.
    const [a] = await dispatch({ args: LONG, target: { mode: 'node', node: 'n2' }, max_retries: 1 });
    assert.equal(a!.node, 'n2');
    assert.equal(a!.attempt, 1);
    assert.equal(a!.retries_left, 1);
    await waitFor('run A running', async () => ((await run(a!.job)).state === 'running' ? true : undefined));
    const n2a = slaveOf('n2');
    const pidA = (await slaveJobs(n2a)).running.find((j) => j.id === a!.job)?.pid;
    assert.ok(pidA, 'n2 lists run A with its pid');
    spiderPids.add(pidA);
    await hardKill9(n2a);
    killGroup(pidA);
    await waitGone(pidA);

    const lostA = await waitFor('run A lost', async () => {
      const r = await run(a!.job);
      return r.state === 'lost' ? r : undefined;
    }, FAILOVER_WITHIN_MS);
    assert.equal(lostA.outcome, 'lost');
    assert.match(lostA.note ?? '', /node n2 went offline while this run was running/);
    const retryA = await waitFor('the re-run of A running on another node', async () => {
      const r = (await allRuns()).find((x) => x.attempt === 2 && x.created_by === 'failover' && (lostA.note ?? '').includes(x.job));
      const fresh = await run(a!.job);
      const x = r ?? (await allRuns()).find((y) => y.attempt === 2 && (fresh.note ?? '').includes(y.job));
      return x && x.state === 'running' ? x : undefined;
    }, FAILOVER_WITHIN_MS);
    assert.notEqual(retryA.node, 'n2');
    assert.equal(retryA.attempt, 2);
    assert.equal(retryA.retries_left, 0);
    assert.deepEqual(retryA.args, LONG);
    assert.match((await run(a!.job)).note ?? '', new RegExp(`re-dispatched as ${retryA.job} on ${retryA.node}`));
    const ids = await masterDb((db) => db.all<{ id: number; job: string; retry_of: number | null }>('SELECT id, job, retry_of FROM runs WHERE job IN (?, ?)', [a!.job, retryA.job]));
    const rowA = ids.find((x) => x.job === a!.job)!;
    const rowA2 = ids.find((x) => x.job === retryA.job)!;
    assert.equal(rowA2.retry_of, rowA.id, 'retry_of is the lost run');
    assert.equal(retryA.retry_of, rowA.id);
    assert.equal((await run(retryA.job)).retry_of_job, a!.job, 'the API names the lost run by its job id');
    assert.equal((await node('n2'))!.status, 'offline');
    const onRetryNode = await slaveJobs(slaveOf(retryA.node!));
    assert.ok(onRetryNode.running.some((j) => j.id === retryA.job), 'the re-run really runs on its node');

    // n2 comes back (new port, same data dir): it announces its new URL and is online again.
    const n2b = await startNode('n2');
    assert.notEqual(n2b.url, n2a.url);
    await waitFor('n2 online at its new URL', async () => {
      const n = await node('n2');
      return n?.status === 'online' && n.url === n2b.url ? true : undefined;
    });
    // Its spider died with it: nothing to cancel, A stays lost, the re-run carries on.
    await heartbeats('n2', 3);
    assert.equal((await run(a!.job)).state, 'lost');
    assert.doesNotMatch((await run(a!.job)).note ?? '', /duplicate/);
    assert.equal((await run(retryA.job)).state, 'running');
    // It is brought up to date before it takes runs again.
    await waitFor('n2 to hold gen 1.1 again', async () => {
      const projects = (await ok<{ projects: Array<{ project: string; versions: Array<{ version: string; nodes: string[] }> }> }>('GET', '/api/projects')).projects;
      return projects.find((p) => p.project === PROJECT)?.versions.every((v) => v.nodes.includes('n2')) ? true : undefined;
    });

    // --- B: only the daemon dies; its spider lives on as an orphan and is re-adopted at restart.
    // C runs beside it with no retries left: it is lost, not re-dispatched (checked in the next test).
    const [b] = await dispatch({ args: LONG, target: { mode: 'node', node: 'n2' }, max_retries: 1 });
    const [c] = await dispatch({ args: LONG, target: { mode: 'node', node: 'n2' }, max_retries: 0 });
    await waitFor('runs B and C running', async () => ((await run(b!.job)).state === 'running' && (await run(c!.job)).state === 'running' ? true : undefined));
    // The master may see them running before the node lists their pids (its keeper starts them).
    const [pidB, pidC] = await waitFor('n2 to list runs B and C with their pids', async () => {
      const running = (await slaveJobs(n2b)).running;
      const pids = [b!.job, c!.job].map((id) => running.find((j) => j.id === id)?.pid);
      return pids.every(Boolean) ? pids as [number, number] : undefined;
    });
    spiderPids.add(pidB);
    spiderPids.add(pidC);
    carried.orphanC = { job: c!.job, pid: pidC };
    await hardKill9(n2b);
    assert.ok(isAlive(pidB) && isAlive(pidC), 'the spiders outlive their daemon');

    const lostB = await waitFor('run B lost', async () => {
      const r = await run(b!.job);
      return r.state === 'lost' ? r : undefined;
    }, FAILOVER_WITHIN_MS);
    const retryB = await waitFor('the re-run of B running on another node', async () => {
      const fresh = await run(b!.job);
      const x = (await allRuns()).find((y) => y.attempt === 2 && y.job !== retryA.job && (fresh.note ?? '').includes(y.job));
      return x && x.state === 'running' ? x : undefined;
    }, FAILOVER_WITHIN_MS);
    assert.equal(lostB.outcome, 'lost');
    assert.notEqual(retryB.node, 'n2');
    const lostC = await run(c!.job);
    assert.equal(lostC.state, 'lost');
    assert.doesNotMatch(lostC.note ?? '', /re-dispatched/, 'no retries left: C is not re-run');
    assert.equal((await allRuns()).filter((x) => x.attempt === 2).length, 2, 'only A and B were re-run');
    // No duplicate: B's keeper stopped the orphan when the lease ran out (issue 14 §4, see
    // test/no_double_crawl.test.ts); C, which is not failed over, is kept running by its keeper.
    await waitGone(pidB);
    assert.ok(isAlive(pidC), 'the only copy of C keeps running');

    const n2c = await startNode('n2');
    await waitFor('n2 online again', async () => {
      const n = await node('n2');
      return n?.status === 'online' && n.url === n2c.url ? true : undefined;
    });
    // n2 reports B stopped by its keeper: nothing to cancel, and B is not re-run a second time.
    await waitFor('B finished on n2, stopped by its keeper', async () => {
      const jobs = await slaveJobs(n2c);
      return jobs.finished.some((j) => j.id === b!.job) && !jobs.running.some((j) => j.id === b!.job) ? true : undefined;
    });
    await heartbeats('n2', 3);
    const noted = await run(b!.job);
    assert.doesNotMatch(noted.note ?? '', /duplicate/);
    assert.equal(noted.state, 'lost', 'the lost record stays lost');
    assert.equal((await allRuns()).filter((x) => x.attempt === 2).length, 2, 'B was re-run once');
    // The re-dispatched runs continue elsewhere.
    for (const r of [retryA, retryB]) {
      assert.equal((await run(r.job)).state, 'running', `${r.job} keeps running`);
      assert.ok((await slaveJobs(slaveOf(r.node!))).running.some((j) => j.id === r.job), `${r.job} still runs on ${r.node}`);
    }
    // No run record is ever lost.
    const jobs = new Map((await allRuns()).map((r) => [r.job, r]));
    assert.equal(jobs.get(a!.job)?.state, 'lost');
    assert.equal(jobs.get(b!.job)?.state, 'lost');
    assert.equal(jobs.get(retryA.job)?.state, 'running');
    assert.equal(jobs.get(retryB.job)?.state, 'running');
    const events = (await ok<{ events: Array<{ status: string }> }>('GET', '/api/nodes/n2')).events.map((e) => e.status);
    assert.ok(events.filter((s) => s === 'offline').length >= 2 && events.filter((s) => s === 'online').length >= 3, JSON.stringify(events));
    // Run C (lost without a retry) must keep running for the next test.
    await stopAllExcept(carried.orphanC?.job);
  });

  // -------------------------------------------------------------------------------------------
  test('a lost run that was NOT re-dispatched is not killed when its node returns still running it', async () => {
    // C was lost with n2 and had no retries left: the copy still running on n2 is the only one,
    // not a duplicate. The master must not cancel it (and should not call it a duplicate).
    const c = carried.orphanC;
    assert.ok(c, 'the failover test left run C');
    try {
      await waitOnline(['n2']);
      // Several heartbeats of the returned n2 (a cancel is sent on the first one that lists it).
      await heartbeats('n2', 4);
      const r = await run(c.job);
      assert.ok(isAlive(c.pid), `the only copy of run C is still running on n2 (note: ${r.note})`);
      assert.ok((await slaveJobs(slaveOf('n2'))).running.some((j) => j.id === c.job), 'n2 still runs C');
      assert.doesNotMatch(r.note ?? '', /duplicate/, `run C is no duplicate: ${r.note}`);
      // With nothing else doing its work, the master takes the run back as running.
      assert.equal(r.state, 'running', `run C is running again: ${JSON.stringify(r)}`);
      assert.match(r.note ?? '', /came back still running this run/);
    } finally {
      killGroup(c.pid);
      await stopAllAndWaitIdle();
    }
  });

  // -------------------------------------------------------------------------------------------
  test('runs cancelled with /api/runs/stop end as cancelled, also those still pending on their node', async () => {
    // 30 runs on nodes taking 2 at a time: most were still pending on their node when cancelled.
    assert.equal(carried.burstJobs.length, 30);
    const outcomes: Record<string, number> = {};
    for (const job of carried.burstJobs) {
      const r = await run(job);
      assert.equal(r.state, 'finished', `${job}: ${JSON.stringify(r)}`);
      outcomes[String(r.outcome)] = (outcomes[String(r.outcome)] ?? 0) + 1;
    }
    assert.deepEqual(outcomes, { cancelled: 30 }, `outcomes of 30 cancelled runs: ${JSON.stringify(outcomes)}`);
  });

  // -------------------------------------------------------------------------------------------
  test('a node joining late receives every version without a new upload', async () => {
    const uploadsBefore = (await ok<{ deployments: DeploymentView[] }>('GET', '/api/deployments?limit=500')).deployments.filter((d) => d.reason === 'upload').length;
    const versions = (await getJson(master.url, '/listversions.json', { project: PROJECT }, { Authorization: ADMIN_AUTH })).versions as string[];
    assert.deepEqual(versions, ['1_0', '1_1']);
    const n4 = await startNode('n4');
    await waitOnline(['n4']);
    await waitFor('n4 to hold every version', async () => {
      const there = await slaveVersions(n4, PROJECT);
      return versions.every((v) => there.includes(v)) ? true : undefined;
    });
    await waitFor('the master to know n4 holds them', async () => {
      const projects = (await ok<{ projects: Array<{ project: string; versions: Array<{ version: string; nodes: string[] }> }> }>('GET', '/api/projects')).projects;
      return projects.find((p) => p.project === PROJECT)?.versions.every((v) => v.nodes.includes('n4')) ? true : undefined;
    });
    const deployments = (await ok<{ deployments: DeploymentView[] }>('GET', '/api/deployments?limit=500')).deployments;
    assert.equal(deployments.filter((d) => d.reason === 'upload').length, uploadsBefore, 'no new upload');
    const joined = deployments.filter((d) => d.reason === 'node-joined' && d.targets.some((t) => t.node === 'n4'));
    assert.deepEqual(joined.map((d) => d.version).sort(), ['1_0', '1_1']);
    assert.ok(joined.every((d) => d.targets.length === 1 && d.targets[0]!.state === 'ok'), JSON.stringify(joined));
    // And it takes runs.
    const [r] = await dispatch({ args: { n: '1', interval_ms: '10' }, target: { mode: 'node', node: 'n4' } });
    assert.equal(r!.node, 'n4');
  });

  // -------------------------------------------------------------------------------------------
  test('the master\'s Scrapyd API answers for the cluster', async () => {
    const all4 = ['n1', 'n2', 'n3', 'n4'];
    await waitOnline(all4);
    const admin = { Authorization: ADMIN_AUTH };

    // scrapyd-deploy: multipart addversion.json with basic auth from scrapy.cfg.
    const form = new FormData();
    form.set('project', PROJECT);
    form.set('version', '2.0');
    form.set('egg', new Blob([new Uint8Array(pkg)]), `${PROJECT}-2.0.egg`);
    const addRes = await fetch(`${master.url}/addversion.json`, { method: 'POST', body: form, headers: admin });
    assert.equal(addRes.status, 200);
    const added = (await addRes.json()) as Json & { nodes?: { ok: string[] } };
    assert.equal(added.status, 'ok', JSON.stringify(added));
    assert.equal(added.project, PROJECT);
    assert.equal(added.version, '2.0');
    assert.equal(added.spiders, 4);
    assert.equal(typeof added.node_name, 'string');
    for (const name of all4) assert.ok((await slaveVersions(slaveOf(name), PROJECT)).includes('2_0'), `${name} got 2.0 (stored as 2_0)`);

    // schedule.json: dispatched to one node with least load.
    const sched = await postForm(master.url, '/schedule.json', { project: PROJECT, spider: 'count', n: '100000', interval_ms: '500' }, admin);
    assert.equal(sched.status, 'ok', JSON.stringify(sched));
    const jobid = sched.jobid as string;
    assert.match(jobid, /^[0-9a-f]{32}$/);
    const holders = [];
    for (const name of all4) {
      const jobs = await slaveJobs(slaveOf(name));
      if ([...jobs.pending, ...jobs.running, ...jobs.finished].some((j) => j.id === jobid)) holders.push(name);
    }
    assert.equal(holders.length, 1, `exactly one node has ${jobid}: ${holders.join(', ')}`);
    assert.equal((await run(jobid)).node, holders[0]);
    assert.equal((await run(jobid)).version, '2_0', 'the newest version by default');

    const listjobs = await getJson(master.url, '/listjobs.json', { project: PROJECT }, admin) as Json & { pending: Array<{ id: string; node: string }>; running: Array<{ id: string; node: string }>; finished: Array<{ id: string }> };
    assert.equal(listjobs.status, 'ok');
    const listed = [...listjobs.pending, ...listjobs.running].find((j) => j.id === jobid);
    assert.ok(listed, JSON.stringify(listjobs));
    assert.equal(listed.node, holders[0]);
    assert.ok(listjobs.finished.length > 0, 'earlier runs are listed as finished');
    const st = await getJson(master.url, '/status.json', { job: jobid }, admin);
    assert.equal(st.status, 'ok');
    assert.ok(st.currstate === 'pending' || st.currstate === 'running', JSON.stringify(st));
    assert.equal((await getJson(master.url, '/status.json', { job: 'nosuchjob' }, admin)).currstate, null);

    // A fixed jobid, as ScrapydWeb sends it.
    const fixed = await postForm(master.url, '/schedule.json', { project: PROJECT, spider: 'hello', jobid: 'fixed-job-1' }, admin);
    assert.equal(fixed.status, 'ok', JSON.stringify(fixed));
    assert.equal(fixed.jobid, 'fixed-job-1');
    const dup = await postForm(master.url, '/schedule.json', { project: PROJECT, spider: 'hello', jobid: 'fixed-job-1' }, admin);
    assert.equal(dup.status, 'error', JSON.stringify(dup));
    const noSpider = await postForm(master.url, '/schedule.json', { project: PROJECT, spider: 'nosuch' }, admin);
    assert.equal(noSpider.status, 'error');
    assert.match(String(noSpider.message), /spider 'nosuch' not found/);

    await waitFor(`${jobid} running`, async () => ((await run(jobid)).state === 'running' ? true : undefined));
    // Its log, fetched from its node through the master (waited for: the spider must have started).
    await waitFor(`the log of ${jobid}`, async () => {
      const log = await fetch(`${master.url}/api/runs/${jobid}/log`, { headers: admin });
      return log.status === 200 && /count spider: 100000 items every 500 ms/.test(await log.text()) ? true : undefined;
    });
    const cancelled = await postForm(master.url, '/cancel.json', { project: PROJECT, job: jobid }, admin);
    assert.equal(cancelled.status, 'ok', JSON.stringify(cancelled));
    assert.equal(cancelled.prevstate, 'running');
    await waitFor(`${jobid} finished`, async () => ((await getJson(master.url, '/status.json', { job: jobid }, admin)).currstate === 'finished' ? true : undefined));
    assert.equal((await run(jobid)).outcome, 'cancelled');
    const onHolder = await slaveJobs(slaveOf(holders[0]!));
    assert.ok(onHolder.finished.some((j) => j.id === jobid), 'the job ended on its node');
    const status = await ok<{ nodes: { total: number; online: number }; projects: number }>('GET', '/api/status');
    assert.deepEqual(status.nodes, { total: 4, online: 4, offline: 0 });
    assert.equal(status.projects, 1);

    const projects = await getJson(master.url, '/listprojects.json', {}, admin);
    assert.equal(projects.status, 'ok');
    assert.deepEqual(projects.projects, [PROJECT]);
    assert.deepEqual((await getJson(master.url, '/listversions.json', { project: PROJECT }, admin)).versions, ['1_0', '1_1', '2_0']);
    const spiders = await getJson(master.url, '/listspiders.json', { project: PROJECT }, admin);
    assert.equal(spiders.status, 'ok');
    assert.deepEqual(spiders.spiders, ['count', 'crash', 'hello', 'shell']);
    const ds = await getJson(master.url, '/daemonstatus.json', {}, admin);
    assert.equal(ds.status, 'ok');
    for (const k of ['pending', 'running', 'finished']) assert.equal(typeof ds[k], 'number', JSON.stringify(ds));
    assert.ok((ds.finished as number) > 30, JSON.stringify(ds));

    // Without credentials: 401 with a challenge, on reads and changes alike.
    for (const [method, path] of [['GET', '/listprojects.json'], ['GET', '/daemonstatus.json'], ['POST', '/schedule.json'], ['POST', '/addversion.json']]) {
      const r = await fetch(master.url + path, { method, ...(method === 'POST' ? { body: new URLSearchParams({ project: PROJECT, spider: 'hello' }) } : {}) });
      assert.equal(r.status, 401, `${method} ${path}`);
      assert.match(r.headers.get('www-authenticate') ?? '', /^Basic/i);
    }
    const wrongPw = await fetch(`${master.url}/listprojects.json`, { headers: { Authorization: basic(ADMIN.user, 'not-the-password') } });
    assert.equal(wrongPw.status, 401);

    // A viewer reads but changes nothing.
    const created = await master.api<{ user: { username: string; role: string } }>('POST', '/api/users', { username: 'viewer1', password: 'viewer-password-1', role: 'viewer' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.user.role, 'viewer');
    const viewer = { Authorization: basic('viewer1', 'viewer-password-1') };
    const vForm = new FormData();
    vForm.set('project', PROJECT);
    vForm.set('version', '3.0');
    vForm.set('egg', new Blob([new Uint8Array(pkg)]), `${PROJECT}-3.0.egg`);
    const vAdd = await fetch(`${master.url}/addversion.json`, { method: 'POST', body: vForm, headers: viewer });
    assert.equal(vAdd.status, 403);
    const vSched = await fetch(`${master.url}/schedule.json`, { method: 'POST', body: new URLSearchParams({ project: PROJECT, spider: 'hello' }), headers: viewer });
    assert.equal(vSched.status, 403);
    const vCancel = await fetch(`${master.url}/cancel.json`, { method: 'POST', body: new URLSearchParams({ project: PROJECT, job: jobid }), headers: viewer });
    assert.equal(vCancel.status, 403);
    const vList = await getJson(master.url, '/listprojects.json', {}, viewer);
    assert.equal(vList.status, 'ok');
    assert.deepEqual(vList.projects, [PROJECT]);
    assert.deepEqual((await getJson(master.url, '/listversions.json', { project: PROJECT }, viewer)).versions, ['1_0', '1_1', '2_0'], 'the viewer uploaded nothing');
    assert.equal((await master.api('POST', '/api/runs', { project: PROJECT, spider: 'hello' }, viewer.Authorization)).status, 403);

    // A real Scrapy egg, built the way scrapyd-deploy builds it: the master cannot list its spiders
    // itself, so the count comes from the nodes.
    const egg = readFileSync(await buildDemoEgg(join(work, 'egg')));
    const eggForm = new FormData();
    eggForm.set('project', DEMO_PROJECT);
    eggForm.set('version', '1700000000');
    eggForm.set('egg', new Blob([new Uint8Array(egg)]), `${DEMO_PROJECT}.egg`);
    const eggRes = (await (await fetch(`${master.url}/addversion.json`, { method: 'POST', body: eggForm, headers: admin })).json()) as Json;
    assert.equal(eggRes.status, 'ok', JSON.stringify(eggRes));
    assert.equal(eggRes.project, DEMO_PROJECT);
    assert.equal(eggRes.version, '1700000000');
    assert.equal(eggRes.spiders, DEMO_SPIDERS.length, JSON.stringify(eggRes));
    const demoSpiders = await getJson(master.url, '/listspiders.json', { project: DEMO_PROJECT }, admin);
    assert.deepEqual(demoSpiders.spiders, [...DEMO_SPIDERS]);
    for (const name of all4) assert.deepEqual(await slaveVersions(slaveOf(name), DEMO_PROJECT), ['1700000000'], `${name} got the egg`);
    assert.deepEqual((await getJson(master.url, '/listprojects.json', {}, viewer)).projects, [PROJECT, DEMO_PROJECT]);
  });

  // -------------------------------------------------------------------------------------------
  test('removing a node that still has active runs does not leave them active forever', async () => {
    // Last in the file: it takes n4 away. Its run must not stay "running" on a node that no longer
    // exists (un-cancellable, counted as running by daemonstatus.json forever): either the removal is
    // refused while the node has active runs, or the runs leave the active states.
    const [r] = await dispatch({ args: LONG, target: { mode: 'node', node: 'n4' } });
    await waitFor('run on n4 running', async () => ((await run(r!.job)).state === 'running' ? true : undefined));
    const del = await master.api<{ error?: string }>('DELETE', '/api/nodes/n4');
    if (del.status === 200) {
      const after = await waitFor(`the run of removed node n4 to leave the active states`, async () => {
        const x = await run(r!.job);
        return ['dispatching', 'pending', 'running'].includes(x.state) ? undefined : x;
      });
      // Re-run elsewhere while n4 (alive and reachable) still runs it: that copy must be stopped, as
      // a returning node's duplicate is. Once n4 is removed, nothing else would ever cancel it.
      const rerun = /re-dispatched as ([0-9a-f]{32})/.exec(after.note ?? '')?.[1];
      if (rerun) {
        await waitFor(`the re-run ${rerun} running`, async () => ((await run(rerun)).state === 'running' ? true : undefined));
        const n4 = slaveOf('n4');
        const stopped = await waitFor('the copy on the removed n4 to stop', async () => {
          const jobs = await slaveJobs(n4);
          return jobs.running.some((j) => j.id === r!.job) ? undefined : true;
        }).catch(() => false);
        assert.ok(stopped, `run ${r!.job} was re-dispatched as ${rerun} but still runs on the removed node n4: two copies`);
      }
    } else {
      assert.equal(del.status, 409, JSON.stringify(del.body));
    }
  });
});

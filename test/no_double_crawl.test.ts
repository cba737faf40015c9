// Issue 14 §4, no double crawl across a dead or cut-off slave: real masters, slaves, keepers and
// spiders. A slave's daemon killed with -9 leaves its spider to a keeper that stops it when the
// lease runs out unless a restarted daemon re-adopts it; a slave cut off from its master stops the
// runs the master fails over and keeps a keep_running one; a duplicate is cancelled only once its
// replacement runs; a stale pooled connection does not lose a dispatch. Windows are printed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { startMaster, CLUSTER_TOKEN, type MasterHandle } from './helpers/master_process.ts';
import { startSlave, tempDir, uploadEgg, waitFor, getJson, type SlaveHandle } from './helpers/slave_process.ts';
import { buildNodePackage } from './helpers/fixtures.ts';
import { gate } from './helpers/gates.ts';
import { schedule, job, waitRunning, waitFinished, isAlive, waitGone, hardKill9, killGroup, type JobRecord } from './helpers/runner_checks.ts';
import { deployNodePackage, waitNodeStatus, waitRunState, type RunView } from './helpers/master_slave_pair.ts';
import { MasterLease } from '../slave/cluster/master_lease.ts';
import { replacementState } from '../master/runs/run_tracker.ts';
import { NodeClient } from '../master/nodes/node_client.ts';

const work = tempDir('spiderplane-lease-test-');
const daemons = new Set<SlaveHandle | MasterHandle>();
const spiderPids = new Set<number>();
let pkg: Buffer;

before(async () => { pkg = await readFile(await buildNodePackage(join(work, 'nodepkg'))); });
after(async () => {
  for (const d of daemons) {
    try { process.kill(d.proc.pid!, 'SIGCONT'); } catch { /* gone */ }
    await d.kill9().catch(() => undefined);
  }
  for (const pid of spiderPids) killGroup(pid);
  await rm(work, { recursive: true, force: true });
});

function itemsOf(dataDir: string, project: string, id: string): number {
  const p = join(dataDir, 'items', project, 'count', `${id}.jl`);
  return existsSync(p) ? readFileSync(p, 'utf8').split('\n').filter(Boolean).length : 0;
}

/** Plays a master to a bare slave: a request with the lease header every 300 ms, until stopped. */
function pinger(url: string, leaseSeconds: number): { stop: () => void } {
  const t = setInterval(() => {
    void fetch(`${url}/daemonstatus.json`, { headers: { 'X-Spiderplane-Lease': String(leaseSeconds) } }).catch(() => undefined);
  }, 300);
  return { stop: () => clearInterval(t) };
}

async function slave(args: string[], dataDir?: string): Promise<SlaveHandle> {
  const h = await startSlave({ dataDir, args: ['--cancel-grace', '2', ...args] });
  daemons.add(h);
  return h;
}

// ---------------------------------------------------------------------------------------------
describe('pure parts', () => {
  test('MasterLease: the window a master tells wins over --master-lease; 0 turns leases off; contact renews', () => {
    let now = 0;
    const l = new MasterLease(10, true, () => now);
    assert.equal(l.windowMs, 10_000);
    now = 9_000;
    assert.equal(l.expired(), false);
    assert.equal(l.contact('3'), true, 'a new window');
    assert.equal(l.windowMs, 3000);
    now = 12_001;
    assert.equal(l.expired(), true);
    l.contact(null);
    assert.equal(l.expired(), false);
    assert.equal(l.contact('nonsense'), false);
    assert.equal(l.windowMs, 3000);
    const off = new MasterLease(0, true, () => now);
    off.contact('3');
    now += 1e9;
    assert.equal(off.expired(), false, '--master-lease 0: never');
    const standalone = new MasterLease(null, false, () => now);
    now += 1e9;
    assert.equal(standalone.expired(), false, 'no master and no flag: no lease');
  });

  test('a duplicate is cancelled only once its replacement is confirmed running', () => {
    assert.equal(replacementState([]), 'none');
    assert.equal(replacementState([{ state: 'failed', started_at: null }]), 'none', 'a dispatch that failed replaces nothing');
    assert.equal(replacementState([{ state: 'failed', started_at: null }, { state: 'pending', started_at: null }]), 'in-flight');
    assert.equal(replacementState([{ state: 'dispatching', started_at: null }]), 'in-flight');
    assert.equal(replacementState([{ state: 'failed', started_at: null }, { state: 'running', started_at: 1 }]), 'confirmed');
    assert.equal(replacementState([{ state: 'finished', started_at: 1 }]), 'confirmed');
  });
});

// ---------------------------------------------------------------------------------------------
describe('a stale pooled connection (UND_ERR_SOCKET) does not lose a dispatch', () => {
  let server: Server;
  let url: string;
  const seen: string[] = [];
  before(async () => {
    // Answers the first request on each connection with keep-alive, then drops the connection when
    // a second one arrives on it: exactly a keep-alive connection the node closed while it sat idle.
    const perSocket = new WeakMap<Socket, number>();
    server = createServer((req, res) => {
      const n = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, n);
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        if (n > 1) { req.socket.destroy(); return; }
        seen.push(`${req.method} ${req.url} ${body}`);
        res.setHeader('Content-Type', 'application/json');
        res.setHeader('Connection', 'keep-alive');
        res.end(req.url === '/schedule.json' ? JSON.stringify({ status: 'ok', jobid: 'j1' }) : JSON.stringify({ status: 'ok', running: 0, pending: 0, finished: 0, node_name: 'x' }));
      });
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => { server.closeAllConnections(); server.close(); });

  test('schedule.json on a dead pooled connection is sent again on a fresh one, once', async () => {
    const client = new NodeClient({ url, username: null, password: null }, CLUSTER_TOKEN, 5000, 3);
    await client.daemonStatus(); // leaves a pooled keep-alive connection the server will drop
    const job = await client.schedule({ project: 'p', spider: 's', version: null, jobid: 'j1', priority: 0, settings: {}, args: {} });
    assert.equal(job, 'j1');
    assert.equal(seen.filter((s) => s.startsWith('POST /schedule.json')).length, 1, `the node got the schedule once: ${seen.join(' | ')}`);
    assert.match(seen.find((s) => s.startsWith('POST'))!, /project=p/);
  });
});

// ---------------------------------------------------------------------------------------------
describe('a slave on its own: keepers and the lease (--master-lease 3)', () => {
  const LEASE = 3;

  test('cut off: after the window with no master, runs sent with _keep_running=0 stop (lost, why noted); _keep_running=1 and plain runs go on', async () => {
    const d = await slave(['--master-lease', String(LEASE)]);
    const ping = pinger(d.url, LEASE);
    try {
      assert.equal((await uploadEgg(d.url, 'nodepkg', 'v1', pkg)).status, 'ok');
      const g = gate();
      const base: Array<[string, string]> = [['project', 'nodepkg'], ['spider', 'count'], ['n', '50'], ['interval_ms', '20'], ...Object.entries(g.args(1))];
      const failover = await schedule(d.url, [...base, ['_keep_running', '0']]);
      const keep = await schedule(d.url, [...base, ['_keep_running', '1']]);
      const plain = await schedule(d.url, base);
      const pids = await Promise.all([failover, keep, plain].map(async (id) => (await waitRunning(d.url, id)).pid!));
      pids.forEach((p) => spiderPids.add(p));
      await waitFor('each held at 1 item', () => ([failover, keep, plain].every((id) => itemsOf(d.dataDir, 'nodepkg', id) === 1) ? true : undefined));
      // While a master keeps in touch, nothing stops: two windows' worth of pings.
      const until = Date.now() + 2 * LEASE * 1000;
      await waitFor('two lease windows with a master in touch', () => (Date.now() > until ? true : undefined), 60_000, 200);
      assert.equal((await job(d.url, failover))?.state, 'running', 'a renewed lease stops nothing');
      const cutAt = Date.now();
      ping.stop();
      const rec = await waitFinished(d.url, failover, { timeoutMs: 60_000 });
      const stoppedAfter = (rec.end_timestamp! * 1000 - cutAt) / 1000;
      console.log(`lease: cut off at t=0, the failover-able run stopped at t=${stoppedAfter.toFixed(2)} s (lease ${LEASE} s)`);
      assert.equal(rec.outcome, 'lost');
      assert.match(rec.note ?? '', /stopped: no master for \d+ s \(lease expired\)/);
      assert.ok(stoppedAfter >= LEASE - 0.5, `not before the window: ${stoppedAfter}`);
      await waitGone(pids[0]!);
      assert.equal((await job(d.url, keep))?.state, 'running', '_keep_running=1 keeps going');
      assert.equal((await job(d.url, plain))?.state, 'running', 'a run no master sent keeps going');
      assert.ok(isAlive(pids[1]!) && isAlive(pids[2]!));
      // While the lease is expired, a failover-able job is not even started.
      const late = await schedule(d.url, [...base, ['_keep_running', '0']]);
      const lateRec = await waitFinished(d.url, late, { timeoutMs: 60_000, complete: false });
      assert.equal(lateRec.outcome, 'lost');
      assert.match(lateRec.note ?? '', /lease expired\): not started/);
      // A bad value is refused with a clear message.
      const bad = await (await fetch(`${d.url}/schedule.json`, { method: 'POST', body: new URLSearchParams([...base, ['_keep_running', 'yes']]) })).json() as { status: string; message: string };
      assert.equal(bad.status, 'error');
      assert.match(bad.message, /_keep_running is invalid/);
    } finally {
      ping.stop();
      await d.kill9();
    }
  });

  test('kill -9 of the daemon: the keeper stops the spider when the lease runs out; the restarted daemon records why, with its exit status', async () => {
    const d = await slave(['--master-lease', String(LEASE)]);
    const ping = pinger(d.url, LEASE);
    assert.equal((await uploadEgg(d.url, 'nodepkg', 'v1', pkg)).status, 'ok');
    const g = gate();
    const id = await schedule(d.url, [['project', 'nodepkg'], ['spider', 'count'], ['n', '50'], ['interval_ms', '20'], ['_keep_running', '0'], ...Object.entries(g.args(2))]);
    const pid = (await waitRunning(d.url, id)).pid!;
    spiderPids.add(pid);
    await waitFor('held at 2 items', () => (itemsOf(d.dataDir, 'nodepkg', id) === 2 ? true : undefined));
    ping.stop();
    const killedAt = Date.now();
    await hardKill9(d);
    assert.ok(isAlive(pid), 'the spider outlives its daemon (for now)');
    await waitGone(pid);
    const goneAfter = (Date.now() - killedAt) / 1000;
    console.log(`keeper: daemon killed at t=0, its orphaned spider stopped at t=${goneAfter.toFixed(2)} s (lease ${LEASE} s from the last master contact)`);
    assert.ok(goneAfter <= LEASE + 30, `stopped, well within reach of the window: ${goneAfter}`);
    g.release(2); // would let it crawl on, if it still ran
    const d2 = await slave([], d.dataDir);
    const rec = await waitFinished(d2.url, id, { timeoutMs: 60_000 });
    assert.equal(rec.outcome, 'lost');
    assert.match(rec.note ?? '', /stopped by its keeper: its daemon died and no daemon re-adopted it within the lease/);
    assert.equal(rec.signal ?? null, null, 'the count spider exits 0 on SIGTERM: the keeper saw its real status');
    assert.equal(rec.exit_code, 0);
    assert.equal(rec.items_count, 2, 'nothing crawled after the stop');
    assert.ok(rec.end_timestamp! * 1000 < Date.now() - 0, 'the end time is when it really ended');
    assert.match(readFileSync(join(d.dataDir, 'logs', 'nodepkg', 'count', `${id}.log`), 'utf8'), /\[spiderplane keeper\] stopped by its keeper/);
    await d2.kill9();
  });

  test('kill -9 of the daemon: a daemon restarted within the window re-adopts the spider, which is not stopped; cancel still reaches it', async () => {
    // A window the restart surely fits in on a busy machine (a daemon start can take seconds there).
    const WINDOW = 10;
    const d = await slave(['--master-lease', String(WINDOW)]);
    let ping = pinger(d.url, WINDOW);
    assert.equal((await uploadEgg(d.url, 'nodepkg', 'v1', pkg)).status, 'ok');
    const g = gate();
    const id = await schedule(d.url, [['project', 'nodepkg'], ['spider', 'count'], ['n', '50'], ['interval_ms', '20'], ['_keep_running', '0'], ...Object.entries(g.args(1, 3))]);
    const pid = (await waitRunning(d.url, id)).pid!;
    spiderPids.add(pid);
    await waitFor('held at 1 item', () => (itemsOf(d.dataDir, 'nodepkg', id) === 1 ? true : undefined));
    await hardKill9(d);
    ping.stop();
    const lastContact = Date.now();
    const d2 = await slave(['--master-lease', String(WINDOW)], d.dataDir);
    ping = pinger(d2.url, WINDOW);
    try {
      const r = await job(d2.url, id);
      assert.equal(r?.state, 'running');
      assert.equal(r?.pid, pid);
      // Well past the window after the old daemon's last contact: the keeper is held by the new
      // daemon, and the master is in touch.
      const until = lastContact + WINDOW * 1000 + 2000;
      await waitFor('past the old daemon\'s window', () => (Date.now() > until ? true : undefined), 60_000, 200);
      assert.ok(isAlive(pid), 're-adopted in time: not stopped');
      g.release(1);
      await waitFor('held at 3 items', () => (itemsOf(d.dataDir, 'nodepkg', id) === 3 ? true : undefined));
      // Cancel's ladder still reaches the spider's process group through a re-adopted keeper.
      const c = await (await fetch(`${d2.url}/cancel.json`, { method: 'POST', body: new URLSearchParams({ project: 'nodepkg', job: id, signal: 'TERM' }) })).json() as { status: string };
      assert.equal(c.status, 'ok');
      const rec = await waitFinished(d2.url, id, { timeoutMs: 60_000 });
      assert.equal(rec.outcome, 'cancelled');
      assert.equal(rec.exit_code, 0, 'the exit status comes from the keeper');
      assert.equal(rec.items_count, 3);
      await waitGone(pid);
    } finally {
      ping.stop();
      await d2.kill9();
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('a master with two slaves (offline after 3 s)', () => {
  const OFFLINE_S = 3;
  let master: MasterHandle;
  const dirs = new Map<string, string>();
  const nodes = new Map<string, SlaveHandle>();
  const TOKEN = { Authorization: `Bearer ${CLUSTER_TOKEN}` };

  async function node(name: string, extra: string[] = []): Promise<SlaveHandle> {
    if (!dirs.has(name)) dirs.set(name, tempDir(`spiderplane-lease-${name}-`));
    const h = await startSlave({ dataDir: dirs.get(name)!, args: ['--master', master.url, '--cluster-token', CLUSTER_TOKEN, '--node-name', name, '--max-proc', '4', '--cancel-grace', '2', ...extra] });
    daemons.add(h);
    nodes.set(name, h);
    return h;
  }
  /** Online at this handle's URL (a restarted slave announces a new port). */
  const onlineAt = (name: string, h: SlaveHandle) => waitFor(`${name} online at ${h.url}`, async () => {
    const r = await master.api<{ nodes: Array<{ name: string; url: string; status: string }> }>('GET', '/api/nodes');
    const n = r.body.nodes.find((x) => x.name === name);
    return n?.status === 'online' && n.url === h.url ? true : undefined;
  });
  const run = async (jobId: string) => (await master.api<{ run: RunView }>('GET', `/api/runs/${jobId}`)).body.run;
  const successors = async (jobId: string) => (await master.api<{ runs: RunView[] }>('GET', '/api/runs?project=gen&limit=1000')).body.runs.filter((r) => r.retry_of_job === jobId);
  const slaveJob = async (h: SlaveHandle, id: string) => ((await getJson(h.url, '/jobs.json', { job: id, limit: '1' }, TOKEN)).jobs as JobRecord[])[0];
  async function dispatch(body: Record<string, unknown>): Promise<RunView> {
    const r = await master.api<{ runs: RunView[] }>('POST', '/api/runs', { project: 'gen', spider: 'count', ...body });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.runs[0]!;
  }

  before(async () => {
    master = await startMaster({ args: ['--heartbeat-interval', '0.5', '--heartbeat-timeout', '1', '--offline-after', String(OFFLINE_S)] });
    daemons.add(master);
    await node('n1');
    await node('n2');
    await waitNodeStatus(master, 'n1', 'online');
    await waitNodeStatus(master, 'n2', 'online');
    await deployNodePackage(master, work);
  });

  test('kill -9 of a slave daemon: its keeper stops the spider as the master fails it over; the items exist once', async () => {
    const g = gate();
    const N = 12;
    const a = await dispatch({ args: { n: String(N), interval_ms: '20', ...g.args(3) }, target: { mode: 'node', node: 'n2' }, max_retries: 1 });
    await waitRunState(master, a.job, (r) => r.state === 'running', 'running');
    const n2 = nodes.get('n2')!;
    const pid = (await slaveJob(n2, a.job))!.pid!;
    spiderPids.add(pid);
    await waitFor('held at 3 items', () => (itemsOf(dirs.get('n2')!, 'gen', a.job) === 3 ? true : undefined));
    await hardKill9(n2);
    const next = await waitFor('the failover copy running on n1', async () => {
      const s = (await successors(a.job))[0];
      return s && s.state === 'running' ? s : undefined;
    });
    assert.equal(next.node, 'n1');
    await waitGone(pid); // its keeper stopped it (at the latest a moment after the failover)
    // The replacement is held at 3 too (same gate); releasing the gate lets only live copies crawl on.
    g.release(3);
    const done = await waitRunState(master, next.job, (r) => r.state === 'finished', 'finished');
    assert.equal(done.items_count, N);
    // n2 returns: the original's record says why it stopped; nothing to cancel, nothing re-run twice.
    const n2b = await node('n2');
    await onlineAt('n2', n2b);
    const rec = await waitFor('the original finished and recorded on n2', async () => {
      const j = await slaveJob(n2b, a.job);
      return j?.state === 'finished' && j.items_count !== null ? j : undefined;
    });
    assert.equal(rec.outcome, 'lost');
    assert.match(rec.note ?? '', /stopped by its keeper/);
    assert.equal(itemsOf(dirs.get('n2')!, 'gen', a.job), 3, 'the original crawled nothing after it was stopped');
    const window = rec.end_timestamp! - next.created_at / 1000;
    console.log(`kill -9 window: the original stopped ${window >= 0 ? `${window.toFixed(2)} s after` : `${(-window).toFixed(2)} s before`} its failover copy was dispatched; items: original ${itemsOf(dirs.get('n2')!, 'gen', a.job)} (all crawled before the kill), replacement ${N} (once)`);
    const lost = await run(a.job);
    assert.equal(lost.state, 'lost');
    assert.doesNotMatch(String(lost.note ?? ''), /duplicate/);
    assert.equal((await successors(a.job)).length, 1, 're-dispatched once');
  });

  test('the master stopped (SIGSTOP) for longer than the window: the slave stops its failover-able run and keeps the keep_running one; the master re-runs the stopped one once', async () => {
    const g = gate();
    const args = { n: '12', interval_ms: '20', ...g.args(2) };
    const s1 = await dispatch({ args, target: { mode: 'node', node: 'n2' }, max_retries: 1 });
    const s2 = await dispatch({ args, target: { mode: 'node', node: 'n2' }, max_retries: 1, keep_running: true });
    for (const r of [s1, s2]) await waitRunState(master, r.job, (x) => x.state === 'running', 'running');
    const n2 = nodes.get('n2')!;
    const pid1 = (await slaveJob(n2, s1.job))!.pid!;
    const pid2 = (await slaveJob(n2, s2.job))!.pid!;
    spiderPids.add(pid1);
    spiderPids.add(pid2);
    process.kill(master.proc.pid!, 'SIGSTOP');
    const stoppedAt = Date.now();
    let rec: JobRecord;
    try {
      rec = await waitFor('n2 to stop s1 on its own', async () => {
        const j = await slaveJob(n2, s1.job);
        return j?.state === 'finished' ? j : undefined;
      });
      assert.equal(rec.outcome, 'lost');
      assert.match(rec.note ?? '', /lease expired/);
      await waitGone(pid1);
      assert.equal((await slaveJob(n2, s2.job))?.state, 'running', 'keep_running: still running');
      assert.ok(isAlive(pid2));
    } finally {
      process.kill(master.proc.pid!, 'SIGCONT');
    }
    console.log(`cut off: master stopped at t=0, n2 stopped its failover-able run at t=${(rec.end_timestamp! - stoppedAt / 1000).toFixed(2)} s (window ${OFFLINE_S} s)`);
    const next = await waitFor('s1 re-dispatched and running', async () => {
      const s = (await successors(s1.job))[0];
      return s && s.state === 'running' ? s : undefined;
    });
    const lost = await run(s1.job);
    assert.equal(lost.state, 'lost');
    assert.match(String(lost.note ?? ''), /lease expired/);
    console.log(`cut off window: the original stopped ${(next.created_at / 1000 - rec.end_timestamp!).toFixed(2)} s before its replacement was dispatched (no overlap)`);
    // A few heartbeats later: still one replacement, s2 still running on n2 (never a duplicate).
    const seenAt = Date.now();
    await waitFor('a few heartbeats', () => (Date.now() - seenAt > 3000 ? true : undefined), 60_000, 200);
    assert.equal((await successors(s1.job)).length, 1, 'stopped by its slave and re-run exactly once');
    assert.equal((await run(s2.job)).state, 'running');
    assert.equal((await successors(s2.job)).length, 0, 'keep_running is not failed over');
    g.release(2);
    for (const r of [next, s2]) {
      const done = await waitRunState(master, r.job, (x) => x.state === 'finished', 'finished');
      assert.equal(done.items_count, 12);
    }
    assert.equal(itemsOf(dirs.get('n2')!, 'gen', s1.job), 2, 'the stopped original crawled nothing more');
  });

  test('never lose the only copy: a returning node\'s copy is not cancelled when its replacement never started', async () => {
    // n2 without leases (--master-lease 0): its orphan keeps running after a kill -9, as before leases.
    await hardKill9(nodes.get('n2')!);
    const n2 = await node('n2', ['--master-lease', '0']);
    await onlineAt('n2', n2);
    const g = gate();
    const x = await dispatch({ args: { n: '5', interval_ms: '20', ...g.args(1) }, target: { mode: 'node', node: 'n2' }, max_retries: 1 });
    await waitRunState(master, x.job, (r) => r.state === 'running', 'running');
    const pid = (await slaveJob(n2, x.job))!.pid!;
    spiderPids.add(pid);
    // n1 loses the project behind the master's back: the failover dispatch to it is refused.
    const del = await (await fetch(`${nodes.get('n1')!.url}/delproject.json`, { method: 'POST', body: new URLSearchParams({ project: 'gen' }), headers: TOKEN })).json() as { status: string };
    assert.equal(del.status, 'ok');
    await hardKill9(n2);
    const failed = await waitFor('the failover attempt to fail', async () => {
      const s = await successors(x.job);
      return s.length > 0 && s.every((r) => r.state === 'failed') && (await run(x.job)).state === 'lost' ? s : undefined;
    });
    assert.match(String(failed[0]!.note ?? ''), /refused|not found/);
    assert.ok(isAlive(pid), 'the only copy still runs on n2 (no lease there)');
    const n2b = await node('n2', ['--master-lease', '0']);
    await onlineAt('n2', n2b);
    const back = await waitRunState(master, x.job, (r) => r.state === 'running', 'taken back as running');
    assert.match(String(back.note ?? ''), /came back still running/);
    const seenAt = Date.now();
    await waitFor('a few heartbeats', () => (Date.now() - seenAt > 3000 ? true : undefined), 60_000, 200);
    assert.ok(isAlive(pid), 'the only copy was not cancelled as a duplicate');
    assert.equal((await slaveJob(n2b, x.job))?.state, 'running');
    assert.doesNotMatch(String((await run(x.job)).note ?? ''), /duplicate/);
    g.release(1);
    const done = await waitRunState(master, x.job, (r) => r.state === 'finished', 'finished');
    assert.equal(done.items_count, 5);
  });
});

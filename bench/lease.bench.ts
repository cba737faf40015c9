// The double-crawl window (issue 14 §4), measured with a real master and two real slaves: a run
// on n2 whose daemon is killed with -9 (its keeper holds the lease), and a run on n2 while the
// master is frozen (SIGSTOP). Prints, per round, the time between the master's failover dispatch
// and the original's stop (negative: the original stopped first, nothing crawled twice), the
// keeper's stop after the kill, and the master's cost of a keeper (its RSS). Asserts nothing.
// Run: npx tsx bench/lease.bench.ts [ROUNDS=3] [OFFLINE_AFTER_S=3]
import { readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startMaster, CLUSTER_TOKEN, type MasterHandle } from '../test/helpers/master_process.ts';
import { startSlave, tempDir, waitFor, getJson, type SlaveHandle } from '../test/helpers/slave_process.ts';
import { deployNodePackage, waitNodeStatus, waitRunState, type RunView } from '../test/helpers/master_slave_pair.ts';
import { hardKill9, waitGone } from '../test/helpers/runner_checks.ts';
import type { SlaveJob } from '../common/types.ts';

const ROUNDS = Number(process.argv[2] ?? 3);
const OFFLINE_S = Number(process.argv[3] ?? 3);
const TOKEN = { Authorization: `Bearer ${CLUSTER_TOKEN}` };
const work = tempDir('spiderplane-lease-bench-');
const dirs = new Map<string, string>();
const handles: Array<SlaveHandle | MasterHandle> = [];
let master: MasterHandle;

async function node(name: string): Promise<SlaveHandle> {
  if (!dirs.has(name)) dirs.set(name, tempDir(`spiderplane-lease-bench-${name}-`));
  const h = await startSlave({ dataDir: dirs.get(name)!, args: ['--master', master.url, '--cluster-token', CLUSTER_TOKEN, '--node-name', name, '--max-proc', '4'] });
  handles.push(h);
  return h;
}
const slaveJob = async (h: SlaveHandle, id: string) => ((await getJson(h.url, '/jobs.json', { job: id, limit: '1' }, TOKEN)).jobs as SlaveJob[])[0];
const successor = async (job: string) => (await master.api<{ runs: RunView[] }>('GET', '/api/runs?project=gen&limit=1000')).body.runs.find((r) => r.retry_of_job === job);
async function dispatch(body: Record<string, unknown>): Promise<RunView> {
  const r = await master.api<{ runs: RunView[] }>('POST', '/api/runs', { project: 'gen', spider: 'count', args: { n: '100000', interval_ms: '100' }, target: { mode: 'node', node: 'n2' }, max_retries: 1, ...body });
  if (r.status !== 201) throw new Error(JSON.stringify(r.body));
  return r.body.runs[0]!;
}
/** A keeper's memory: RSS, and its own share (PSS: the node binary's pages are shared by all keepers). */
function memory(pid: number): string {
  const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(t)?.[1] ?? NaN) / 1024;
  return `RSS ${kb('Rss').toFixed(1)} MiB, PSS ${kb('Pss').toFixed(1)} MiB`;
}

async function main(): Promise<void> {
  master = await startMaster({ args: ['--heartbeat-interval', '0.5', '--heartbeat-timeout', '1', '--offline-after', String(OFFLINE_S)] });
  handles.push(master);
  await node('n1');
  let n2 = await node('n2');
  await waitNodeStatus(master, 'n1', 'online');
  await waitNodeStatus(master, 'n2', 'online');
  await deployNodePackage(master, work);
  console.log(`lease window = master --offline-after ${OFFLINE_S} s, heartbeat 0.5 s`);

  for (let i = 1; i <= ROUNDS; i++) {
    // kill -9 of n2's daemon while it runs a spider that crawls an item every 100 ms
    const a = await dispatch({});
    await waitRunState(master, a.job, (r) => r.state === 'running', 'running');
    const j = await slaveJob(n2, a.job);
    const pid = j!.pid!;
    const keeper = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    const keeperMem = memory(keeper);
    const killedAt = Date.now();
    await hardKill9(n2);
    await waitGone(pid);
    const stoppedAt = Date.now();
    const next = await waitFor('failover running', async () => { const s = await successor(a.job); return s?.state === 'running' ? s : undefined; });
    n2 = await node('n2');
    await waitNodeStatus(master, 'n2', 'online');
    const rec = await waitFor('original recorded', async () => { const x = await slaveJob(n2, a.job); return x?.state === 'finished' && x.items_count !== null ? x : undefined; });
    const win = rec.end_timestamp! - next.created_at / 1000;
    console.log(`kill -9 round ${i}: keeper stopped the orphan ${((stoppedAt - killedAt) / 1000).toFixed(2)} s after the kill; original stop - failover dispatch = ${win.toFixed(2)} s (${win > 0 ? `~${Math.ceil(win * 10)} items crawled twice` : 'no overlap'}); keeper ${keeperMem}`);
    await master.api('POST', `/api/runs/${next.job}/cancel`, {});

    // the master frozen for twice the window
    const b = await dispatch({});
    await waitRunState(master, b.job, (r) => r.state === 'running', 'running');
    const pidB = (await slaveJob(n2, b.job))!.pid!;
    process.kill(master.proc.pid!, 'SIGSTOP');
    const frozenAt = Date.now();
    const recB = await waitFor('n2 stops b', async () => { const x = await slaveJob(n2, b.job); return x?.state === 'finished' ? x : undefined; });
    await waitGone(pidB);
    process.kill(master.proc.pid!, 'SIGCONT');
    const nextB = await waitFor('b re-run', async () => { const s = await successor(b.job); return s?.state === 'running' ? s : undefined; });
    console.log(`SIGSTOP round ${i}: n2 stopped the run ${(recB.end_timestamp! - frozenAt / 1000).toFixed(2)} s after the master froze; original stop - re-dispatch = ${(recB.end_timestamp! - nextB.created_at / 1000).toFixed(2)} s`);
    await master.api('POST', `/api/runs/${nextB.job}/cancel`, {});
  }
}

main()
  .catch((e) => { console.error(e); process.exitCode = 1; })
  .finally(async () => {
    if (master) await master.api('POST', '/api/runs/stop', {}).catch(() => undefined);
    for (const h of handles) { try { process.kill(h.proc.pid!, 'SIGCONT'); } catch { /* gone */ } await h.kill9().catch(() => undefined); }
    for (const d of [...dirs.values(), work]) await rm(d, { recursive: true, force: true });
  });

// Spider services at scale, with a real master and three real slaves on this host (max_proc 30
// each) and a worker spider that is a `sleep` (cheap: 60 of them cost nothing but process slots).
// Prints the time from `scale 0 -> 60` to 60 replicas running (as the slaves list them), from
// `scale 60 -> 0` to none, and a rolling update of 60 replicas to a new version (default
// max_unavailable 1 per node, and 5 per node). Docker Swarm's documentation-style claim for
// comparison: 50 -> 500 in 30 s, stop all in 30 s, update all machines in a minute.
// Run: npm run bench:services   (or npx tsx bench/services.bench.ts [replicas] [noroll])
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { buildZip } from '../test/helpers/fixtures.ts';
import { getJson, startSlave, tempDir, waitFor, type SlaveHandle } from '../test/helpers/slave_process.ts';
import { startMaster, CLUSTER_TOKEN, ADMIN, basic, type MasterHandle } from '../test/helpers/master_process.ts';
import { DEFAULT_PLAN_OPTIONS, planService, type PlanNode, type PlanReplica } from '../master/services/reconcile_plan.ts';

const REPLICAS = Number(process.argv[2] ?? 60);
/** `npx tsx bench/services.bench.ts 500 noroll`: only the scale up and down (a roll of 500 at 1 per node takes minutes). */
const ROLL = process.argv[3] !== 'noroll';
const NODES = 3;
const PROJECT = 'bench';
const work = tempDir('spiderplane-services-bench-');
const TOKEN = { Authorization: `Bearer ${CLUSTER_TOKEN}` };

async function upload(master: MasterHandle, version: string): Promise<void> {
  const zip = await buildZip(join(work, `w-${version}.zip`), { 'spiderplane.json': JSON.stringify({ spiders: { worker: { command: 'exec sleep 100000' } } }) });
  const form = new FormData();
  form.set('version', version);
  form.set('egg', new Blob([new Uint8Array(readFileSync(zip))]), 'w.zip');
  const r = await fetch(`${master.url}/api/projects/${PROJECT}/versions?wait=1`, { method: 'POST', body: form, headers: { Authorization: basic(ADMIN.user, ADMIN.password) } });
  if (r.status !== 201) throw new Error(`upload failed: ${r.status} ${await r.text()}`);
}

async function runningOnSlaves(slaves: SlaveHandle[]): Promise<number> {
  let n = 0;
  for (const s of slaves) {
    const r = (await getJson(s.url, '/listjobs.json', { project: PROJECT }, TOKEN)) as unknown as { running: unknown[]; pending: unknown[] };
    n += r.running.length;
    if (r.pending.length) n += 1000; // pending never counts as done
  }
  return n;
}

interface Svc { running: number; pending: number; status: string; nodes: Array<{ versions: Record<string, number> }> }

/** The pure planner alone on a big cluster: one reconcile pass must never hold the event loop long. */
function plannerFigures(): void {
  const nodes: PlanNode[] = Array.from({ length: 50 }, (_, i) => ({ id: i, name: `n${i}`, observed: true, eligible: true, misplacedReason: null, holds: new Set(['1', '2']), freeSlots: 1000 }));
  const reps: PlanReplica[] = Array.from({ length: 5000 }, (_, i) => ({ job: `j${i}`, nodeId: i % 50, version: '1', state: 'running', createdAt: 0, startedAt: 1, stopping: false }));
  const out: string[] = [];
  for (const [label, replicas, target, list] of [['0 -> 5000', 5000, '1', []], ['5000 -> 0', 0, '1', reps], ['roll of 5000', 5000, '2', reps]] as const) {
    const t0 = performance.now();
    planService({ replicas, maxPerNode: null, maxUnavailable: 1, targetVersion: target, stableVersion: '1', pausedVersion: null }, nodes, list, [], { ...DEFAULT_PLAN_OPTIONS, now: Date.now() });
    out.push(`${label} ${(performance.now() - t0).toFixed(1)} ms`);
  }
  console.log(`planner, 50 nodes: ${out.join(', ')}`);
}

async function main(): Promise<void> {
  plannerFigures();
  const master = await startMaster({ args: ['--heartbeat-interval', '1', '--offline-after', '10'] });
  const slaves = await Promise.all(Array.from({ length: NODES }, (_, i) => startSlave({
    args: ['--master', master.url, '--cluster-token', CLUSTER_TOKEN, '--node-name', `s${i + 1}`, '--max-proc', String(Math.ceil(REPLICAS / NODES) + 10), '--on-shutdown', 'stop'],
  })));
  const svc = async () => (await master.api<{ service: Svc }>('GET', '/api/services/bench')).body.service;
  try {
    await waitFor('nodes online', async () => ((await master.api<{ nodes: Array<{ status: string }> }>('GET', '/api/nodes')).body.nodes.filter((n) => n.status === 'online').length === NODES ? true : undefined), 60_000);
    await upload(master, '1');
    await master.api('POST', '/api/services', { name: 'bench', project: PROJECT, spider: 'worker', replicas: 0 });

    let t0 = performance.now();
    await master.api('POST', '/api/services/bench/scale', { replicas: REPLICAS });
    await waitFor(`${REPLICAS} running on the slaves`, async () => ((await runningOnSlaves(slaves)) === REPLICAS ? true : undefined), 120_000, 50);
    const upSlaves = performance.now() - t0;
    await waitFor('the master to see them', async () => ((await svc()).running === REPLICAS ? true : undefined), 120_000, 50);
    const upMaster = performance.now() - t0;
    console.log(`scale 0 -> ${REPLICAS}: ${(upSlaves / 1000).toFixed(2)} s until the slaves run all ${REPLICAS}; ${(upMaster / 1000).toFixed(2)} s until the master reports them running`);

    for (const [label, maxUnavailable, version] of ROLL ? [['max_unavailable 1 per node (default)', 1, '2'], ['max_unavailable 5 per node', 5, '3']] as const : []) {
      await master.api('PUT', '/api/services/bench', { max_unavailable: maxUnavailable });
      t0 = performance.now();
      await upload(master, version);
      const uploaded = performance.now() - t0;
      await waitFor(`all on ${version}`, async () => {
        const s = await svc();
        const onNew = s.nodes.reduce((a, n) => a + (n.versions[version] ?? 0), 0);
        return onNew === REPLICAS && s.running === REPLICAS && s.status === 'running' ? true : undefined;
      }, 600_000, 100);
      const rolled = performance.now() - t0;
      console.log(`rolling update of ${REPLICAS} replicas to version ${version}, ${label}: ${(rolled / 1000).toFixed(1)} s from upload (the upload and deploy to ${NODES} nodes took ${(uploaded / 1000).toFixed(2)} s of it)`);
    }

    t0 = performance.now();
    await master.api('POST', '/api/services/bench/scale', { replicas: 0 });
    await waitFor('none on the slaves', async () => ((await runningOnSlaves(slaves)) === 0 ? true : undefined), 120_000, 50);
    const down = performance.now() - t0;
    console.log(`scale ${REPLICAS} -> 0: ${(down / 1000).toFixed(2)} s until no slave runs a replica`);
  } finally {
    await master.api('POST', '/api/services/bench/scale', { replicas: 0 }).catch(() => undefined);
    for (const s of slaves) await s.stop().catch(() => undefined);
    await master.stop().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
    for (const s of slaves) await rm(s.dataDir, { recursive: true, force: true });
    await rm(master.dataDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

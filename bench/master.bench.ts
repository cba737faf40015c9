// Master benchmarks: prints numbers, asserts nothing. Run: npm run bench:master [heartbeat|dispatch|deploy]
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildZip } from '../test/helpers/fixtures.ts';
import { ROOT, startSlave, tempDir, uploadEgg, waitFor, type SlaveHandle } from '../test/helpers/slave_process.ts';
import { startMaster, CLUSTER_TOKEN, ADMIN, basic, type MasterHandle } from '../test/helpers/master_process.ts';
import { cpuSeconds, rssMb, throughput } from './proc_usage.ts';

const only = process.argv[2];
const want = (name: string) => !only || only === name;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function fakeNodes(): Promise<{ port: number; stop: () => void }> {
  const proc = spawn(join(ROOT, 'node_modules', '.bin', 'tsx'), [join(ROOT, 'bench', 'fake_scrapyd.ts')], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  const port = await new Promise<number>((res) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /fake scrapyd on (\d+)/.exec(out);
      if (m) res(Number(m[1]));
    });
  });
  return { port, stop: () => process.kill(-proc.pid!, 'SIGKILL') };
}

async function addFakeNodes(master: MasterHandle, port: number, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await master.api('POST', '/api/nodes', { url: `http://127.0.0.1:${port}/n${i}`, name: `fake${i}` });
    if (r.status !== 201) throw new Error(JSON.stringify(r.body));
  }
  await waitFor('fake nodes online', async () => {
    const r = await master.api<{ nodes: Array<{ status: string }> }>('GET', '/api/nodes');
    return r.body.nodes.filter((x) => x.status === 'online').length === n ? true : undefined;
  }, 120_000, 500);
}

async function heartbeat(): Promise<void> {
  const fake = await fakeNodes();
  const master = await startMaster({ args: ['--heartbeat-interval', '5'] });
  try {
    await addFakeNodes(master, fake.port, 200);
    await sleep(10_000);
    const pid = master.proc.pid!;
    const c0 = cpuSeconds(pid);
    await sleep(60_000);
    const used = cpuSeconds(pid) - c0;
    console.log(`master heartbeating 200 simulated nodes every 5 s (daemonstatus + metrics + listjobs each, metrics stored): ` +
      `CPU ${((used / 60) * 100).toFixed(1)} % of one core over 60 s, ${rssMb(pid).toFixed(0)} MB RSS (tsx loader + master)`);
  } finally {
    await master.stop();
    fake.stop();
  }
}

async function dispatch(): Promise<void> {
  const fake = await fakeNodes();
  const master = await startMaster({ args: ['--heartbeat-interval', '5'] });
  try {
    await addFakeNodes(master, fake.port, 10);
    const pkg = readFileSync(await buildZip(join(tempDir(), 'p.zip'), { 'spiderplane.json': JSON.stringify({ spiders: { s: { command: 'true' } } }) }));
    const form = new FormData();
    form.set('version', '1');
    form.set('egg', new Blob([new Uint8Array(pkg)]), 'p.zip');
    await fetch(`${master.url}/api/projects/p/versions?wait=1`, { method: 'POST', body: form, headers: { Authorization: basic(ADMIN.user, ADMIN.password) } });
    const one = () => master.api('POST', '/api/runs', { project: 'p', spider: 's' });
    const { seq, par } = await throughput(one);
    console.log(`dispatch throughput over 10 simulated nodes (least-load choice, SQLite record, schedule.json to the node): ${seq.toFixed(0)} runs/s one at a time, ${par.toFixed(0)} runs/s with 20 in flight`);
  } finally {
    await master.stop();
    fake.stop();
  }
}

async function deploy(): Promise<void> {
  const master = await startMaster({ args: ['--heartbeat-interval', '1'] });
  const slaves: SlaveHandle[] = [];
  try {
    for (let i = 0; i < 10; i++) slaves.push(await startSlave({ args: ['--master', master.url, '--cluster-token', CLUSTER_TOKEN, '--node-name', `s${i}`] }));
    await waitFor('10 slaves online', async () => {
      const r = await master.api<{ nodes: Array<{ status: string }> }>('GET', '/api/nodes');
      return r.body.nodes.filter((x) => x.status === 'online').length === 10 ? true : undefined;
    }, 120_000, 500);
    const pkg = readFileSync(await buildZip(join(tempDir(), 'big.zip'), {
      'spiderplane.json': JSON.stringify({ spiders: { s: { command: 'true' } } }),
      'blob.bin': randomBytes(20 * 1024 * 1024),
    }));
    const form = new FormData();
    form.set('version', '1');
    form.set('egg', new Blob([new Uint8Array(pkg)]), 'big.zip');
    let t0 = performance.now();
    const r = await fetch(`${master.url}/api/projects/big/versions?wait=1`, { method: 'POST', body: form, headers: { Authorization: basic(ADMIN.user, ADMIN.password) } });
    const body = (await r.json()) as { deployment: { targets: Array<{ state: string }> } };
    const cluster = performance.now() - t0;
    const ok = body.deployment.targets.filter((t) => t.state === 'ok').length;
    t0 = performance.now();
    for (let i = 0; i < 10; i++) await uploadEgg(slaves[0]!.url, 'single', `v${i}`, pkg, { Authorization: `Bearer ${CLUSTER_TOKEN}` });
    const serial = performance.now() - t0;
    console.log(`deploy of a 20 MB package to 10 slaves through the master: ${(cluster / 1000).toFixed(2)} s wall (${ok}/10 ok); ` +
      `10 x one copy straight to one slave, one after another: ${(serial / 1000).toFixed(2)} s`);
  } finally {
    for (const s of slaves) await s.stop();
    await master.stop();
  }
}

if (want('dispatch')) await dispatch();
if (want('deploy')) await deploy();
if (want('heartbeat')) await heartbeat();

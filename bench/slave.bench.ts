// Slave benchmarks: prints numbers, asserts nothing. Run: npm run bench
// Each figure measures the same work as the Scrapyd figure it is compared with in the README.
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpuSeconds, rssMb } from './proc_usage.ts';
import { join } from 'node:path';
import { buildDemoEgg, buildZip } from '../test/helpers/fixtures.ts';
import { getJson, postForm, startSlave, tempDir, uploadEgg, waitFor, type SlaveHandle } from '../test/helpers/slave_process.ts';

const only = process.argv[2];
const want = (name: string) => !only || only === name;

function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
const ms = (n: number) => `${n.toFixed(1)} ms`;

async function jobsJson(url: string, params: Record<string, string>) {
  return (await getJson(url, '/jobs.json', params)).jobs as Array<Record<string, unknown>>;
}

function parseTime(s: string): number {
  // "YYYY-MM-DD HH:MM:SS.ffffff" local time -> epoch ms with sub-ms precision
  const [date, time] = s.split(' ');
  const [hms, frac = '0'] = time!.split('.');
  const d = new Date(`${date}T${hms}`);
  return d.getTime() + Number(`0.${frac}`) * 1000;
}

async function trivialPackage(dir: string): Promise<Buffer> {
  const path = await buildZip(join(dir, 'trivial.zip'), {
    'spiderplane.json': JSON.stringify({ spiders: { noop: { command: 'true' }, nap: { command: 'sleep 0.3' } } }),
  });
  return readFileSync(path);
}

async function latency(): Promise<void> {
  // Enough slots that every job finds one free: this measures the start, not the queue.
  const slave = await startSlave({ args: ['--max-proc', '32'] });
  try {
    await uploadEgg(slave.url, 'bench', '1', await trivialPackage(slave.dataDir));
    const client: number[] = [];
    const server: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t0 = performance.now();
      const { jobid } = (await postForm(slave.url, '/schedule.json', { project: 'bench', spider: 'nap' })) as { jobid: string };
      // Client side: until status.json says running (or already finished).
      await waitFor('running', async () => {
        const s = (await getJson(slave.url, '/status.json', { job: jobid })).currstate;
        return s === 'running' || s === 'finished' ? true : undefined;
      }, 10_000, 1);
      client.push(performance.now() - t0);
      const [job] = await jobsJson(slave.url, { job: jobid });
      server.push(parseTime(job!.start_time as string) - parseTime(job!.created_time as string));
    }
    console.log(`schedule -> running, 50 jobs one after another (Scrapyd: median ~2500 ms, it polls its queue every 5 s)`);
    console.log(`  server side (created -> process spawned): median ${ms(pct(server, 50))}, p95 ${ms(pct(server, 95))}`);
    console.log(`  client side (schedule.json sent -> status.json says running, polling every 1 ms): median ${ms(pct(client, 50))}, p95 ${ms(pct(client, 95))}`);
  } finally {
    await slave.stop();
  }
}

async function waitAllFinished(slave: SlaveHandle, n: number): Promise<void> {
  await waitFor('all jobs finished', async () => {
    const s = await getJson(slave.url, '/daemonstatus.json');
    return s.finished === n && s.running === 0 && s.pending === 0 ? true : undefined;
  }, 600_000, 20);
}

async function throughput(): Promise<void> {
  for (const kind of ['scrapy', 'shell'] as const) {
    const slave = await startSlave({ args: ['--max-proc', '4'] });
    try {
      if (kind === 'scrapy') await uploadEgg(slave.url, 'bench', '1', readFileSync(await buildDemoEgg(slave.dataDir)));
      else await uploadEgg(slave.url, 'bench', '1', await trivialPackage(slave.dataDir));
      const t0 = performance.now();
      for (let i = 0; i < 40; i++) await postForm(slave.url, '/schedule.json', { project: 'bench', spider: kind === 'scrapy' ? 'quick' : 'noop' });
      await waitAllFinished(slave, 40);
      const wall = performance.now() - t0;
      console.log(`40 trivial jobs at max_proc 4 (${kind === 'scrapy' ? "real Scrapy 'quick' spider, 3 items each" : "shell 'true'"}): ${(wall / 1000).toFixed(2)} s wall`);
    } finally {
      await slave.stop();
    }
  }
}

async function listjobs(): Promise<void> {
  const dataDir = tempDir();
  // Create the schema, then fill it with 100 000 finished jobs directly.
  let slave = await startSlave({ dataDir });
  await uploadEgg(slave.url, 'project7', '1', await trivialPackage(dataDir));
  await slave.stop();
  const db = new Database(join(dataDir, 'slave.db'));
  const insert = db.prepare(`INSERT INTO jobs (id, project, spider, state, created_at, start_time, end_time, outcome, log_exists, items_exists)
                             VALUES (?, ?, ?, 'finished', ?, ?, ?, 'succeeded', 1, 1)`);
  const t = Date.now() / 1000 - 100_000;
  db.transaction(() => {
    for (let i = 0; i < 100_000; i++) insert.run(randomBytes(16).toString('hex'), `project${i % 1000}`, `spider${i % 7}`, t + i, t + i, t + i + 0.5);
  })();
  db.close();
  const time = async (url: string, path: string) => {
    const runs: number[] = [];
    let bytes = 0;
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      const r = await fetch(url + path);
      bytes = (await r.arrayBuffer()).byteLength;
      runs.push(performance.now() - t0);
    }
    return `${ms(pct(runs, 50))} (${bytes > 1e6 ? (bytes / 1e6).toFixed(1) + ' MB' : bytes + ' bytes'})`;
  };
  console.log('listjobs.json with 100 000 finished jobs in the database (median of 10 calls):');
  slave = await startSlave({ dataDir });
  try {
    console.log(`  default finished_to_keep 100, all projects: ${await time(slave.url, '/listjobs.json')}`);
    console.log(`  default finished_to_keep 100, one project: ${await time(slave.url, '/listjobs.json?project=project7')}`);
    console.log(`  /jobs.json newest 100 finished (extension, paginated): ${await time(slave.url, '/jobs.json?state=finished&limit=100')}`);
    console.log(`  /jobs HTML page (what ScrapydWeb polls): ${await time(slave.url, '/jobs')}`);
  } finally {
    await slave.stop();
  }
  slave = await startSlave({ dataDir, args: ['--finished-to-keep', '100000'] });
  try {
    console.log(`  finished_to_keep 100000, every job listed: ${await time(slave.url, '/listjobs.json')}`);
  } finally {
    await slave.stop();
  }
}

async function addversion(): Promise<void> {
  const slave = await startSlave();
  try {
    const dir = slave.dataDir;
    const generic = readFileSync(await buildZip(join(dir, 'big.zip'), {
      'spiderplane.json': JSON.stringify({ spiders: { noop: { command: 'true' } } }),
      'data/blob.bin': randomBytes(20 * 1024 * 1024),
    }));
    const runs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const r = await uploadEgg(slave.url, 'big', `v${i}`, generic);
      if (r.status !== 'ok') throw new Error(JSON.stringify(r));
      runs.push(performance.now() - t0);
    }
    console.log(`addversion.json, 20 MB generic package (incompressible): median ${ms(pct(runs, 50))} of 5`);
  } finally {
    await slave.stop();
  }
}

async function idle(): Promise<void> {
  const slave = await startSlave();
  try {
    const pid = slave.proc.pid!;
    const ticks = () => cpuSeconds(pid);
    const rss = () => rssMb(pid);
    await new Promise((r) => setTimeout(r, 5000));
    const t0 = ticks();
    await new Promise((r) => setTimeout(r, 20_000));
    const used = ticks() - t0;
    console.log(`idle slave: ${rss().toFixed(1)} MB RSS (tsx loader + daemon), CPU ${((used / 20) * 100).toFixed(2)} % of one core over 20 s`);
  } finally {
    await slave.stop();
  }
}

if (want('latency')) await latency();
if (want('throughput')) await throughput();
if (want('listjobs')) await listjobs();
if (want('addversion')) await addversion();
if (want('idle')) await idle();

// The master's worst event-loop stall while five ~1 MiB uploads that unpack to 1 GiB each are
// checked at once (issue 9, finding 4: the old master froze for 9.6 s and failed its nodes over).
// Prints numbers, asserts nothing. Goal: the master's worst stall under 50 ms.
//
//   npm run bench:upload-stall                          this checkout
//   npx tsx bench/upload_stall.bench.ts --root /work/main   another checkout (read only), for a before/after
//   options: --uploads N (5), --mib M (1024: unpacked size of each upload),
//            --nice=-10 (run the master's event-loop thread at that priority: on a shared, loaded
//            machine it then waits less for a core, so what remains is the master's own stalling)
//
// Two views of the stall: a probe client outside the master requests a static file one request
// after another during the uploads (its worst latency bounds the worst stall from above, and works
// on any version), and the master's own event-loop lag monitor (GET /metrics, where it exists).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { setPriority, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import zlib from 'node:zlib';
import { rawZip, type RawEntry } from '../test/helpers/raw_zip.ts';

const { values } = parseArgs({ options: { root: { type: 'string' }, uploads: { type: 'string', default: '5' }, mib: { type: 'string', default: '1024' }, nice: { type: 'string' } } });
const root = resolve(values.root ?? join(import.meta.dirname, '..'));
const uploads = Number(values.uploads);
const unpackedMib = Number(values.mib);
const ADMIN = { user: 'admin', password: 'bench-password-1' };
const auth = 'Basic ' + Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64');

/** A generic package of `mib` MiB of zeros in entries of at most 255 MiB (the per-file limit is 256 MiB). */
function bombLikePackage(mib: number): Buffer {
  const entries: RawEntry[] = [{ name: 'spiderplane.json', content: JSON.stringify({ spiders: { s: { command: 'true' } } }) }];
  const cache = new Map<number, { compressed: Buffer; crc: number }>();
  let left = mib * 1024 * 1024 - 4096; // room for the manifest within the 1 GiB total
  for (let i = 0; left > 0; i++) {
    const size = Math.min(left, 255 * 1024 * 1024);
    if (!cache.has(size)) {
      const zeros = Buffer.alloc(size);
      cache.set(size, { compressed: zlib.deflateRawSync(zeros, { level: 9 }), crc: zlib.crc32(zeros) });
    }
    const { compressed, crc } = cache.get(size)!;
    entries.push({ name: `data/${i}.bin`, method: 8, compressed, size, crc });
    left -= size;
  }
  return rawZip(entries);
}

async function startMaster(dataDir: string): Promise<{ url: string; proc: ChildProcess }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(root, 'run_master.ts'), '--port', '0', '--data-dir', dataDir,
    '--admin-user', ADMIN.user, '--admin-password', ADMIN.password, '--max-upload-mb', '200'], {
    cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SPIDERPLANE_LAG_SAMPLE_MS: '5' }, // a precise worst stall
  });
  if (values.nice !== undefined) setPriority(proc.pid!, Number(values.nice)); // Linux: that thread only (the event loop)
  const url = await new Promise<string>((res, rej) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) res(m[1]!);
    });
    proc.once('exit', (code) => rej(new Error(`master exited with ${code}: ${out}`)));
  });
  return { url, proc };
}

async function upload(url: string, project: string, data: Buffer): Promise<{ status: number; text: string }> {
  const form = new FormData();
  form.set('version', '1');
  form.set('egg', new Blob([new Uint8Array(data)]), `${project}.zip`);
  const r = await fetch(`${url}/api/projects/${project}/versions`, { method: 'POST', body: form, headers: { Authorization: auth } });
  return { status: r.status, text: await r.text() };
}

async function masterLag(url: string): Promise<Record<string, number> | null> {
  const r = await fetch(`${url}/metrics`, { headers: { Authorization: auth } });
  const text = await r.text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^spiderplane_master_event_loop_(lag_p50|lag_p99|lag_max|stalled)_seconds(?:_total)? (\S+)$/gm)) out[m[1]!] = Number(m[2]) * 1000;
  return Object.keys(out).length ? out : null;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Probes the master every PROBE_GAP_MS (one request at a time) until `until` settles. */
const PROBE_GAP_MS = 5;
async function probeWhile(url: string, until: Promise<unknown>): Promise<{ latencies: number[] }> {
  let over = false;
  void until.finally(() => (over = true)).catch(() => undefined);
  const latencies: number[] = [];
  while (!over) {
    const p0 = performance.now();
    await fetch(`${url}/static/favicon.svg`).then((r) => r.arrayBuffer());
    latencies.push(performance.now() - p0);
    await sleep(PROBE_GAP_MS);
  }
  latencies.sort((a, b) => a - b);
  return { latencies };
}

/** Waits (up to 75 s) until start-up and earlier phases have left the master's one-minute lag window. */
async function waitWindowRolled(url: string): Promise<void> {
  const start = await masterLag(url);
  if (!start) return;
  await sleep(62_000);
}

function report(what: string, latencies: number[], lag: Record<string, number> | null): void {
  console.log(`${what}: ${latencies.length} probes, latency median ${pct(latencies, 50).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms, worst ${latencies.at(-1)!.toFixed(1)} ms` +
    (lag ? `; master's own lag over the last minute: p50 ${lag.lag_p50!.toFixed(1)} ms, p99 ${lag.lag_p99!.toFixed(1)} ms, max ${lag.lag_max!.toFixed(1)} ms` : ''));
}

/** The event-loop thread's time on a CPU and waiting for one (Linux schedstat), in ms: how much of a lag is the machine's. */
function schedstat(pid: number): { run: number; wait: number } {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(' ').map(Number);
    return { run: run! / 1e6, wait: wait! / 1e6 };
  } catch {
    return { run: NaN, wait: NaN };
  }
}

function schedReport(what: string, a: { run: number; wait: number }, b: { run: number; wait: number }, seconds: number): void {
  console.log(`  ${what}: the master's event-loop thread ran ${(b.run - a.run).toFixed(0)} ms and waited ${(b.wait - a.wait).toFixed(0)} ms for a free core in ${seconds.toFixed(1)} s (load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`);
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function main(): Promise<void> {
  const pkg = bombLikePackage(unpackedMib);
  console.log(`master from ${root}${values.nice !== undefined ? ` (event-loop thread at nice ${values.nice})` : ''}; ${uploads} parallel uploads of ${(pkg.length / 1048576).toFixed(2)} MiB that unpack to ${unpackedMib} MiB each`);
  const dataDir = mkdtempSync(join(tmpdir(), 'spiderplane-bench-stall-'));
  const master = await startMaster(dataDir);
  try {
    // Warm up: one request of each kind, so first-use costs (compiling, starting a worker) are in.
    await fetch(`${master.url}/static/favicon.svg`).then((r) => r.arrayBuffer());
    await upload(master.url, 'warmup', bombLikePackage(1));

    // Baseline: the same probing with no upload, so the machine's own noise is known (on a shared,
    // loaded machine the master's thread also waits for a core).
    await waitWindowRolled(master.url);
    const s0 = schedstat(master.proc.pid!);
    const idle = await probeWhile(master.url, sleep(15_000));
    const idleLag = await masterLag(master.url);
    report('no upload (15 s)', idle.latencies, idleLag);
    schedReport('no upload', s0, schedstat(master.proc.pid!), 15);

    await waitWindowRolled(master.url);
    const lagBefore = await masterLag(master.url);
    const s1 = schedstat(master.proc.pid!);
    const t0 = performance.now();
    const all = Promise.all(Array.from({ length: uploads }, (_, i) => upload(master.url, `bomb${i}`, pkg)));
    const busy = await probeWhile(master.url, all);
    const done = await all;
    const wall = performance.now() - t0;
    const s2 = schedstat(master.proc.pid!);
    const lagAfter = await masterLag(master.url);
    const statuses = done.map((r) => r.status).join(', ');
    console.log(`uploads answered in ${(wall / 1000).toFixed(2)} s (HTTP ${statuses})${done.some((r) => r.status >= 300) ? `: ${done.find((r) => r.status >= 300)!.text.slice(0, 200)}` : ''}`);
    report(`${uploads} uploads`, busy.latencies, lagAfter);
    schedReport('uploads', s1, s2, wall / 1000);
    if (lagAfter) {
      console.log(`stalled (≥ 100 ms at a time) during the uploads: ${(lagAfter.stalled! - (lagBefore?.stalled ?? 0)).toFixed(0)} ms`);
      console.log(`worst stall during the uploads: ${lagAfter.lag_max!.toFixed(1)} ms (goal < 50 ms; with no upload: ${idleLag!.lag_max!.toFixed(1)} ms)`);
    } else {
      console.log(`this master exports no event-loop lag; worst stall seen by the probe during the uploads: ${busy.latencies.at(-1)!.toFixed(1)} ms (goal < 50 ms)`);
    }
  } finally {
    master.proc.kill('SIGTERM');
    await new Promise((r) => master.proc.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();

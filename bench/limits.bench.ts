// Cost of one memory-limit tick on a slave: a scan of /proc (every process's stat) and the RSS of
// every watched job's tree, with the processes this machine has and with 300 more. Prints numbers,
// asserts nothing. The slave's LimitWatcher does this twice a second, only while a job has a
// memory limit; it must stay far below the 50 ms an event-loop turn may take.
// Run: npx tsx bench/limits.bench.ts
import { spawn, type ChildProcess } from 'node:child_process';
import { childrenOf, readProcTable, readProcTableSliced, treeRss } from '../slave/runner/process_tree.ts';

function stats(samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `median ${q(0.5).toFixed(2)} ms, p95 ${q(0.95).toFixed(2)} ms, max ${s[s.length - 1]!.toFixed(2)} ms`;
}

function tick(jobs: number[]): number {
  const t0 = performance.now();
  const table = readProcTable();
  const kids = childrenOf(table);
  for (const pid of jobs) treeRss(table, pid, kids);
  return performance.now() - t0;
}

/** The watcher's way: sliced, so what counts is the longest slice (the event loop's wait), not the sum. */
async function slicedTick(jobs: number[]): Promise<{ total: number; longest: number }> {
  let longest = 0;
  let last = performance.now();
  const t0 = last;
  const probe = setInterval(() => { const n = performance.now(); longest = Math.max(longest, n - last); last = n; }, 0);
  const table = await readProcTableSliced();
  const kids = childrenOf(table);
  for (const pid of jobs) treeRss(table, pid, kids);
  clearInterval(probe);
  longest = Math.max(longest, performance.now() - last);
  return { total: performance.now() - t0, longest };
}

async function measure(label: string, jobs: number[]): Promise<void> {
  const whole: number[] = [];
  for (let i = 0; i < 50; i++) whole.push(tick(jobs));
  const totals: number[] = [];
  const waits: number[] = [];
  for (let i = 0; i < 50; i++) {
    const r = await slicedTick(jobs);
    totals.push(r.total);
    waits.push(r.longest);
  }
  console.log(`${label}: ${readProcTable().size} processes, ${jobs.length} watched jobs`);
  console.log(`  one synchronous scan:        ${stats(whole)}`);
  console.log(`  sliced scan, wall time:      ${stats(totals)}`);
  console.log(`  sliced scan, longest block:  ${stats(waits)}`);
}

await measure('as is', [process.pid]);
const extra: ChildProcess[] = [];
for (let i = 0; i < 300; i++) extra.push(spawn('sleep', ['60'], { stdio: 'ignore', detached: true }));
await new Promise((r) => setTimeout(r, 500));
await measure('with 300 more processes', extra.slice(0, 30).map((c) => c.pid!));
for (const c of extra) c.kill('SIGKILL');

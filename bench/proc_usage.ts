import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** pids of a process and all its descendants (tsx runs the program in a child node process). */
export function processTree(pid: number): number[] {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    try {
      const children = readFileSync(`/proc/${pids[i]}/task/${pids[i]}/children`, 'utf8').trim();
      if (children) pids.push(...children.split(' ').map(Number));
    } catch { /* gone */ }
  }
  return pids;
}

/** CPU seconds (user + system) used so far by a process tree. */
export function cpuSeconds(pid: number): number {
  return processTree(pid).reduce((sum, p) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return sum + (Number(f[11]) + Number(f[12])) / 100;
    } catch { return sum; }
  }, 0);
}

/** Resident memory of a process tree, in MB. */
export function rssMb(pid: number): number {
  return processTree(pid).reduce((sum, p) => {
    try { return sum + Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))![1]) / 1024; } catch { return sum; }
  }, 0);
}

/** What this process did over a measured window: CPU (% of one core), peak RSS and event-loop lag. */
export interface InProcessWindow {
  cpuPercent: number;
  rssMaxMb: number;
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  wallSeconds: number;
}

/** Measures this process for `seconds`, sampling RSS once a second (the master runs in it). */
export async function measureInProcess(seconds: number): Promise<InProcessWindow> {
  const lag = monitorEventLoopDelay({ resolution: 10 });
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let rssMax = 0;
  lag.enable();
  while (performance.now() - t0 < seconds * 1000) {
    await new Promise((r) => setTimeout(r, 1000));
    rssMax = Math.max(rssMax, process.memoryUsage().rss);
  }
  lag.disable();
  const c = process.cpuUsage(c0);
  const wallSeconds = (performance.now() - t0) / 1000;
  return {
    cpuPercent: ((c.user + c.system) / 1e6 / wallSeconds) * 100, rssMaxMb: rssMax / 1e6,
    lagP50Ms: lag.percentile(50) / 1e6, lagP99Ms: lag.percentile(99) / 1e6, lagMaxMs: lag.max / 1e6, wallSeconds,
  };
}

/** Calls per second of `one`: 300 one at a time, then 30 waves of 20 in flight. */
export async function throughput(one: () => Promise<unknown>): Promise<{ seq: number; par: number }> {
  let t0 = performance.now();
  for (let i = 0; i < 300; i++) await one();
  const seq = 300 / ((performance.now() - t0) / 1000);
  t0 = performance.now();
  for (let i = 0; i < 30; i++) await Promise.all(Array.from({ length: 20 }, one));
  const par = 600 / ((performance.now() - t0) / 1000);
  return { seq, par };
}

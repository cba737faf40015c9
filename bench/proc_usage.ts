import { readFileSync } from 'node:fs';

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

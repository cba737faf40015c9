import { readdirSync, readFileSync } from 'node:fs';

// Resident memory of a spider's whole process tree, read from /proc without spawning anything.
// One scan of /proc serves every running job of a tick: each /proc/PID/stat gives the parent,
// the process group and the resident pages, so the tree of every job comes from the same table.

export interface ProcInfo {
  ppid: number;
  pgrp: number;
  /** resident set size in bytes */
  rss: number;
}

let pageSize: number | null = null;

/** The kernel's page size, from /proc/self (statm counts pages, status says kB): no getconf needed. */
export function systemPageSize(): number {
  if (pageSize !== null) return pageSize;
  pageSize = 4096;
  try {
    const pages = Number(readFileSync('/proc/self/statm', 'utf8').split(' ')[1]);
    const kb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
    if (pages > 0 && kb > 0) {
      // Two reads a moment apart differ by a few pages at most: round to a power of two.
      pageSize = 2 ** Math.round(Math.log2((kb * 1024) / pages));
    }
  } catch {
    // not Linux: keep 4 KiB
  }
  return pageSize;
}

/** Parses one /proc/PID/stat line (comm may hold spaces and parentheses). */
export function parseStat(text: string, page: number): ProcInfo | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const f = text.slice(close + 2).split(' ');
  // f[0] = field 3 (state), so field N is f[N - 3].
  if (f[0] === 'Z' || f[0] === 'X') return null; // exited: holds no memory
  const ppid = Number(f[1]);
  const pgrp = Number(f[2]);
  const rssPages = Number(f[21]);
  if (!Number.isFinite(ppid) || !Number.isFinite(pgrp) || !Number.isFinite(rssPages)) return null;
  return { ppid, pgrp, rss: rssPages * page };
}

/** The pids in /proc (numeric entries). */
function procPids(): string[] {
  try {
    return readdirSync('/proc').filter((name) => { const c = name.charCodeAt(0); return c >= 48 && c <= 57; });
  } catch {
    return [];
  }
}

function readOne(out: Map<number, ProcInfo>, name: string, page: number): void {
  try {
    const info = parseStat(readFileSync(`/proc/${name}/stat`, 'utf8'), page);
    if (info) out.set(Number(name), info);
  } catch {
    // gone between readdir and read
  }
}

/** Every live process: pid -> parent, group, RSS (in one go: for tools and benchmarks). */
export function readProcTable(): Map<number, ProcInfo> {
  const page = systemPageSize();
  const out = new Map<number, ProcInfo>();
  for (const name of procPids()) readOne(out, name, page);
  return out;
}

/**
 * The same table, read in slices of `slice` processes with the event loop free in between: on a
 * busy host with hundreds of processes one full scan can take tens of milliseconds (bench/limits.bench.ts).
 */
export async function readProcTableSliced(slice = 48): Promise<Map<number, ProcInfo>> {
  const page = systemPageSize();
  const out = new Map<number, ProcInfo>();
  const names = procPids();
  for (let i = 0; i < names.length; i += slice) {
    if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    for (const name of names.slice(i, i + slice)) readOne(out, name, page);
  }
  return out;
}

/**
 * RSS in bytes of a spider's tree: every process in its group (the spider is a group leader) plus
 * every descendant of the leader that left the group (setsid, setpgid), each counted once.
 */
export function treeRss(table: ReadonlyMap<number, ProcInfo>, leader: number, children?: ReadonlyMap<number, number[]>): number {
  const kids = children ?? childrenOf(table);
  const seen = new Set<number>();
  let total = 0;
  const add = (pid: number) => {
    if (seen.has(pid)) return;
    const p = table.get(pid);
    if (!p) return;
    seen.add(pid);
    total += p.rss;
  };
  for (const [pid, p] of table) if (p.pgrp === leader) add(pid);
  // Walk down from the leader; `walked` is apart from `seen` (a group member's own children count too).
  const walked = new Set<number>();
  const stack = [leader];
  while (stack.length) {
    const pid = stack.pop()!;
    if (walked.has(pid)) continue;
    walked.add(pid);
    add(pid);
    for (const k of kids.get(pid) ?? []) stack.push(k);
  }
  return total;
}

/** parent pid -> child pids, computed once per table and shared by every job of a tick. */
export function childrenOf(table: ReadonlyMap<number, ProcInfo>): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const [pid, p] of table) {
    const list = out.get(p.ppid);
    if (list) list.push(pid);
    else out.set(p.ppid, [pid]);
  }
  return out;
}

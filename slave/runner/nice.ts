import { setPriority } from 'node:os';

// CPU share of a run. The nice level is set with setpriority(2) on the spider's pid right after
// spawn rather than by spawning under `nice -n`: no extra process in the tree, no dependency on a
// `nice` binary, and it works for every package kind. Children the spider starts afterwards
// inherit it; one started in the microseconds before the call would not (a spider does not fork
// before its interpreter has loaded). Levels 0..19 only: lowering priority needs no privilege.

/** Sets a process's nice level; false (never a throw) when the process is gone or the call is refused. */
export function applyNice(pid: number, level: number): boolean {
  try {
    setPriority(pid, Math.max(0, Math.min(19, Math.round(level))));
    return true;
  } catch {
    return false;
  }
}

import type { LimitHit, RunLimits } from '../../common/types.ts';

// The breach decision, free of I/O and clocks: given a job's limits and what it has used, say
// whether (and why) it must be stopped. The LimitWatcher feeds it; tests call it directly.

export const MIB = 1024 * 1024;

/** What a running job has used so far. */
export interface Usage {
  elapsedSeconds: number;
  /** RSS of the whole process tree in bytes, or null when it was not sampled (no memory limit). */
  rssBytes: number | null;
}

/** The first limit the usage breaks (runtime is checked first: it is exact), or null. */
export function breach(limits: RunLimits, u: Usage): LimitHit | null {
  if (limits.max_runtime !== null && limits.max_runtime > 0 && u.elapsedSeconds >= limits.max_runtime) {
    return { kind: 'timeout', limit: limits.max_runtime, reached: Math.round(u.elapsedSeconds * 10) / 10, unit: 's' };
  }
  if (limits.max_memory !== null && limits.max_memory > 0 && u.rssBytes !== null && u.rssBytes > limits.max_memory * MIB) {
    return { kind: 'memory', limit: limits.max_memory, reached: Math.round((u.rssBytes / MIB) * 10) / 10, unit: 'MiB' };
  }
  return null;
}

/** The sentence a stopped job's note, log line and alert carry. */
export function describeHit(h: LimitHit): string {
  return h.kind === 'timeout'
    ? `stopped by the slave: ran ${h.reached} s, over its max_runtime of ${h.limit} s`
    : `stopped by the slave: its processes used ${h.reached} MiB, over its max_memory of ${h.limit} MiB`;
}

/** A job the watcher looks after. */
export interface Watched {
  uid: number;
  pid: number;
  /** epoch seconds the job started */
  startTime: number;
  limits: RunLimits;
}

import type { ScheduleParams } from '../../common/http/scrapyd_params.ts';
import { MAX_MEMORY_MIB, MAX_RUNTIME_SECONDS } from '../../common/http/scrapyd_params.ts';
import type { Fields } from '../http/input.ts';

// What a run request or a schedule says about limits and failure retries, one shape for the API,
// the web forms, the scheduler and the dispatcher. Limits: null = the slave's default, 0 = none;
// they travel to the slave as schedule.json's _max_runtime / _max_memory / _nice.
//
// `retries` (this policy) and `max_retries` (the older field) are two budgets: `max_retries` is
// how often a run is re-dispatched because its NODE was lost (at once, on another node);
// `retries` is how often a run is re-run because it FAILED (outcome failed, timeout or memory —
// never cancelled), after retry_delay seconds doubling each time. A failover does not use up a
// failure retry, and a failure retry does not use up the failover budget.

export interface RunPolicy {
  max_runtime: number | null;
  max_memory: number | null;
  nice: number | null;
  retries: number;
  /** seconds before the first retry; doubles for each further one (with jitter) */
  retry_delay: number;
  /**
   * Keep the run going on its node when the node is cut off from the master (issue 14 §4): the
   * master does not fail it over, and the slave does not stop it when its master lease expires.
   * Without it, a run with failover retries left is stopped by its slave and re-run elsewhere.
   */
  keep_running: boolean;
}

export const MAX_RETRIES = 20;
export const MAX_RETRY_DELAY_SECONDS = 7 * 24 * 3600;
export const DEFAULT_RETRY_DELAY_SECONDS = 60;

export const NO_POLICY: RunPolicy = { max_runtime: null, max_memory: null, nice: null, retries: 0, retry_delay: DEFAULT_RETRY_DELAY_SECONDS, keep_running: false };

/** The policy fields of a JSON body (run request, schedule), each checked with a message naming it. */
export function readPolicy(f: Fields): RunPolicy {
  const opt = (k: string, max: number, integer = false) => (f.has(k) ? f.number(k, 0, { min: 0, max, integer }) : null);
  return {
    max_runtime: opt('max_runtime', MAX_RUNTIME_SECONDS),
    max_memory: opt('max_memory', MAX_MEMORY_MIB),
    nice: opt('nice', 19, true),
    retries: f.number('retries', 0, { min: 0, max: MAX_RETRIES, integer: true }),
    retry_delay: f.number('retry_delay', DEFAULT_RETRY_DELAY_SECONDS, { min: 0, max: MAX_RETRY_DELAY_SECONDS }),
    keep_running: f.bool('keep_running', false),
  };
}

/** A stored policy (a schedule's run_policy JSON), tolerant of fields added later. */
export function parseStoredPolicy(json: string | null | undefined): RunPolicy {
  let o: Partial<RunPolicy> = {};
  try {
    o = json ? (JSON.parse(json) as Partial<RunPolicy>) : {};
  } catch {
    o = {};
  }
  return { ...NO_POLICY, ...o };
}

/** The policy of a run row. */
export function policyOfRun(r: { max_runtime: number | null; max_memory: number | null; nice: number | null; retries: number; retry_delay: number; keep_running?: number | null }): RunPolicy {
  return {
    max_runtime: r.max_runtime ?? null, max_memory: r.max_memory ?? null, nice: r.nice ?? null, retries: r.retries ?? 0, retry_delay: r.retry_delay ?? DEFAULT_RETRY_DELAY_SECONDS,
    keep_running: r.keep_running === 1,
  };
}

/** The schedule.json parameters that carry the limits to a slave (absent = the slave's default). */
export function limitParams(p: RunPolicy): Pick<ScheduleParams, 'maxRuntime' | 'maxMemory' | 'nice'> {
  const out: Pick<ScheduleParams, 'maxRuntime' | 'maxMemory' | 'nice'> = {};
  if (p.max_runtime !== null) out.maxRuntime = p.max_runtime;
  if (p.max_memory !== null) out.maxMemory = p.max_memory;
  if (p.nice !== null) out.nice = p.nice;
  return out;
}

/** The policy from schedule.json's reserved parameters (the master's Scrapyd facade). */
export function policyFromScheduleParams(p: ScheduleParams): RunPolicy {
  return { ...NO_POLICY, max_runtime: p.maxRuntime ?? null, max_memory: p.maxMemory ?? null, nice: p.nice ?? null, keep_running: p.keepRunning ?? false };
}

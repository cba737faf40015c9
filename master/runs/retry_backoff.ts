// When and whether a failed run is retried: pure functions of the run's facts (no clock, no
// randomness of their own), used by the RetryManager and the alert text and tested alone.

/** Outcomes a failure retry repeats: a crash or a limit. Never 'cancelled' (a person stopped it), nor 'lost' (failover's job). */
export const RETRYABLE_OUTCOMES: readonly string[] = ['failed', 'timeout', 'memory'];

const MAX_DELAY_MS = 24 * 3600_000;
/** ±20 %: retries of many runs that failed together (a site down) do not all come back at once. */
export const JITTER = 0.2;

/**
 * The wait before retry number `n` (1 = the first retry): base, doubled for each earlier retry,
 * times a jitter factor in [1 - JITTER, 1 + JITTER) drawn from `random` (0..1), capped at a day.
 */
export function retryDelayMs(baseSeconds: number, n: number, random: () => number = Math.random): number {
  const plain = baseSeconds * 1000 * 2 ** Math.max(0, n - 1);
  const jittered = plain * (1 - JITTER + 2 * JITTER * random());
  return Math.round(Math.min(MAX_DELAY_MS, jittered));
}

export interface RetryFacts {
  state: string;
  outcome: string | null;
  cancel_requested: number | boolean;
  retries: number;
  retry_number: number;
}

export type RetryDecision =
  | { kind: 'retry'; number: number; of: number }
  | { kind: 'gave_up'; of: number }
  | { kind: 'none' };

/** Whether an ended run is retried: retry `number` of `of`, the budget is spent, or it is no failure to retry. */
export function decideRetry(r: RetryFacts): RetryDecision {
  if (r.retries <= 0 || r.state !== 'finished' || !r.outcome || !RETRYABLE_OUTCOMES.includes(r.outcome) || r.cancel_requested) return { kind: 'none' };
  if (r.retry_number >= r.retries) return { kind: 'gave_up', of: r.retries };
  return { kind: 'retry', number: r.retry_number + 1, of: r.retries };
}

/** The words an alert uses: "retry 1 of 3 in 60 s", "gave up after 3 retries", or null. */
export function retryPhrase(r: RetryFacts & { retry_at: number | null; ended_at: number | null }): string | null {
  const d = decideRetry(r);
  if (d.kind === 'gave_up') return `gave up after ${d.of} ${d.of === 1 ? 'retry' : 'retries'}`;
  if (d.kind === 'retry' && r.retry_at !== null) {
    return `retry ${d.number} of ${d.of} in ${Math.max(0, Math.round((r.retry_at - (r.ended_at ?? r.retry_at)) / 1000))} s`;
  }
  return null;
}

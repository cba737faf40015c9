import type { SqlDb } from '../store/sql_db.ts';
import type { LimitHit } from '../../common/types.ts';
import type { RunPolicy } from './run_policy.ts';
import type { RunRow } from './run_store.ts';

/**
 * The SQL of the runs' limit and retry columns (kept apart from RunStore). A due retry is claimed
 * by one UPDATE before it is dispatched, as the scheduler claims occurrences, so it runs once even
 * if the master restarts; a claim whose dispatch never created the retry is released at start.
 */
export class RunPolicyStore {
  constructor(private readonly db: SqlDb) {}

  async setPolicy(id: number, p: RunPolicy, retryNumber: number): Promise<void> {
    await this.db.run(`UPDATE runs SET max_runtime = @max_runtime, max_memory = @max_memory, nice = @nice, retries = @retries,
                       retry_delay = @retry_delay, retry_number = @retry_number, keep_running = @keep_running WHERE id = @id`,
    { id, ...p, keep_running: p.keep_running ? 1 : 0, retry_number: retryNumber });
  }

  async setLimitHit(id: number, hit: LimitHit | null): Promise<void> {
    await this.db.run(`UPDATE runs SET limit_hit = ? WHERE id = ?`, [hit ? JSON.stringify(hit) : null, id]);
  }

  /** Sets when a failed run's retry is due (and un-claims it, for a retry planned again). */
  async planRetry(id: number, at: number): Promise<void> {
    await this.db.run(`UPDATE runs SET retry_at = ?, retry_claimed_at = NULL WHERE id = ?`, [Math.round(at), id]);
  }

  due(now: number): Promise<RunRow[]> {
    return this.db.all<RunRow>(`SELECT * FROM runs WHERE retry_at IS NOT NULL AND retry_claimed_at IS NULL AND retry_at <= ? AND cancel_requested = 0
                                ORDER BY retry_at, id LIMIT 100`, [now]);
  }

  /** Cancelling a failed run whose retry is still waiting drops that retry; true when there was one. */
  async dropRetry(id: number): Promise<boolean> {
    return (await this.db.run(`UPDATE runs SET retry_at = NULL WHERE id = ? AND retry_claimed_at IS NULL AND retry_at IS NOT NULL`, [id])) === 1;
  }

  /** True for the one caller that takes this retry (one conditional UPDATE: once, across masters). */
  async claim(id: number, now: number): Promise<boolean> {
    return (await this.db.run(`UPDATE runs SET retry_claimed_at = ? WHERE id = ? AND retry_at IS NOT NULL AND retry_claimed_at IS NULL`, [now, id])) === 1;
  }

  /** At start: claims the previous master took but never turned into a retry run. */
  releaseInterrupted(): Promise<number> {
    return this.db.run(`UPDATE runs SET retry_claimed_at = NULL WHERE retry_claimed_at IS NOT NULL
                        AND NOT EXISTS (SELECT 1 FROM runs r2 WHERE r2.retry_of = runs.id)`);
  }

  /** Failed runs with a retry left but none planned (the master stopped between the end and the plan). */
  unplanned(since: number): Promise<RunRow[]> {
    return this.db.all<RunRow>(`SELECT * FROM runs WHERE state = 'finished' AND outcome IN ('failed', 'timeout', 'memory') AND cancel_requested = 0
                                AND retry_number < retries AND retry_at IS NULL AND ended_at >= ?
                                AND NOT EXISTS (SELECT 1 FROM runs r2 WHERE r2.retry_of = runs.id) ORDER BY id`, [since]);
  }

  /** The newest run that re-runs this one. */
  successorOf(id: number): Promise<RunRow | undefined> {
    return this.db.get<RunRow>(`SELECT * FROM runs WHERE retry_of = ? ORDER BY id DESC LIMIT 1`, [id]);
  }

  /** The first run of a run's chain of retries and failovers. */
  async rootOf(run: RunRow, get: (id: number) => Promise<RunRow | undefined>): Promise<RunRow> {
    let r = run;
    for (let i = 0; i < 100 && r.retry_of !== null; i++) {
      const prev = await get(r.retry_of);
      if (!prev) break;
      r = prev;
    }
    return r;
  }
}

import type { SqlDb } from '../store/sql_db.ts';

export type RunState = 'dispatching' | 'pending' | 'running' | 'finished' | 'lost' | 'failed';
export const ACTIVE_STATES: readonly RunState[] = ['dispatching', 'pending', 'running'];
export const ENDED_STATES: readonly RunState[] = ['finished', 'lost', 'failed'];
/** A filtered total is counted up to this many rows (a bounded read); beyond it the total is a lower bound. */
export const COUNT_CAP = 10_000;
/** A lost run may still be taken back when its node returns within this window: retention keeps it. */
export const LOST_TAKE_BACK_MS = 7 * 24 * 3600_000;

export interface RunRow {
  id: number;
  job: string;
  project: string;
  spider: string;
  version: string | null;
  args: string;
  settings: string;
  priority: number;
  node_id: number | null;
  node: string | null;
  state: RunState;
  outcome: string | null;
  schedule_id: number | null;
  retry_of: number | null;
  attempt: number;
  retries_left: number;
  created_at: number;
  dispatched_at: number | null;
  started_at: number | null;
  ended_at: number | null;
  exit_code: number | null;
  items_count: number | null;
  error_count: number | null;
  cancel_requested: number;
  note: string | null;
  created_by: string | null;
  // Limits and failure retries (see run_policy.ts; written by RunPolicyStore).
  max_runtime: number | null;
  max_memory: number | null;
  nice: number | null;
  retries: number;
  retry_delay: number;
  retry_number: number;
  retry_at: number | null;
  retry_claimed_at: number | null;
  /** JSON LimitHit when a limit stopped the run */
  limit_hit: string | null;
  /** the spider service this run is a replica of (master/services) */
  service_id: number | null;
}

export interface NewRun {
  job: string;
  project: string;
  spider: string;
  version: string | null;
  args: Record<string, string>;
  settings: Record<string, string>;
  priority: number;
  node_id: number;
  node: string;
  schedule_id: number | null;
  retry_of: number | null;
  attempt: number;
  retries_left: number;
  created_by: string | null;
  service_id?: number | null;
}

export interface RunFilter {
  state?: string;
  node?: string;
  project?: string;
  spider?: string;
  schedule_id?: number;
  since?: number;
  limit: number;
  offset: number;
}

/**
 * Every SQL statement about runs: the master's record of each job it sent to a node.
 * Each list reads an index that matches its filter and its sort (filter before limit), and the
 * per-state counts come from run_counts, kept by triggers in the same transaction as each change:
 * no request reads the whole history, however long it is. The same SQL runs on SQLite and
 * PostgreSQL (INDEXED BY only on SQLite, through `db.sql.indexedBy`).
 */
export class RunStore {
  constructor(private readonly db: SqlDb) {}

  /** `runs` read through this index on SQLite (the plan must not depend on the planner's guess: a wrong one sorts the whole history). */
  private runsBy(index: string): string { return `runs ${this.db.sql.indexedBy(index)}`; }

  async insert(r: NewRun): Promise<RunRow> {
    // A service replica is tagged in the same INSERT, before it is sent to a node, so a master restart never loses track of it.
    const id = await this.db.insert(`INSERT INTO runs (job, project, spider, version, args, settings, priority, node_id, node, state, schedule_id,
                          retry_of, attempt, retries_left, created_at, created_by, service_id)
                          VALUES (@job, @project, @spider, @version, @args, @settings, @priority, @node_id, @node, 'dispatching', @schedule_id,
                          @retry_of, @attempt, @retries_left, @created_at, @created_by, @service_id)`,
    { ...r, args: JSON.stringify(r.args), settings: JSON.stringify(r.settings), created_at: Date.now(), service_id: r.service_id || null });
    return (await this.get(id))!;
  }

  /** Active replicas of every service (dispatching, pending, running). */
  activeReplicas(): Promise<RunRow[]> {
    return this.db.all<RunRow>(`SELECT * FROM runs WHERE service_id IS NOT NULL AND state IN ('dispatching', 'pending', 'running') ORDER BY id`);
  }

  /** Replicas of a service that ended at or after `since`, newest first (restart backoff, crash loops, rolls). */
  endedReplicasSince(serviceId: number, since: number): Promise<RunRow[]> {
    return this.db.all<RunRow>(`SELECT * FROM runs WHERE service_id = ? AND ended_at >= ? ORDER BY ended_at DESC LIMIT 200`, [serviceId, since]);
  }

  get(id: number): Promise<RunRow | undefined> { return this.db.get<RunRow>(`SELECT * FROM runs WHERE id = ?`, [id]); }
  byJob(job: string): Promise<RunRow | undefined> { return this.db.get<RunRow>(`SELECT * FROM runs WHERE job = ?`, [job]); }
  /** The job ids of these runs (for links to a retry's original), by id; unknown ids are left out. */
  async jobsOf(ids: readonly number[]): Promise<Map<number, string>> {
    const wanted = [...new Set(ids)];
    if (wanted.length === 0) return new Map();
    const rows = await this.db.all<{ id: number; job: string }>(`SELECT id, job FROM runs WHERE ${this.db.sql.inJsonArray('id', 'int')}`, [JSON.stringify(wanted)]);
    return new Map(rows.map((r) => [r.id, r.job]));
  }
  activeOfNode(nodeId: number): Promise<RunRow[]> {
    return this.db.all<RunRow>(`SELECT * FROM runs WHERE node_id = ? AND state IN ('dispatching', 'pending', 'running')`, [nodeId]);
  }
  /** Runs lost with this node since `since`, and whether each was re-run elsewhere (1 or 0). */
  lostOfNode(nodeId: number, since: number): Promise<Array<RunRow & { has_successor: number }>> {
    return this.db.all<RunRow & { has_successor: number }>(`SELECT runs.*, CASE WHEN EXISTS (SELECT 1 FROM runs r2 WHERE r2.retry_of = runs.id) THEN 1 ELSE 0 END AS has_successor
                              FROM runs WHERE node_id = ? AND state = 'lost' AND ended_at > ? AND outcome = 'lost'`, [nodeId, since]);
  }
  active(): Promise<RunRow[]> { return this.db.all<RunRow>(`SELECT * FROM runs WHERE state IN ('dispatching', 'pending', 'running') ORDER BY id`); }
  /** The runs that repeat this one (failovers, retries, and each node tried for them). */
  successorsOf(id: number): Promise<RunRow[]> { return this.db.all<RunRow>(`SELECT * FROM runs WHERE retry_of = ? ORDER BY id`, [id]); }
  /** Runs a schedule started at or after `since` (to tell whether an interrupted fire got as far as dispatching). */
  ofScheduleSince(scheduleId: number, since: number): Promise<RunRow[]> {
    return this.db.all<RunRow>(`SELECT * FROM runs WHERE schedule_id = ? AND created_at >= ? ORDER BY id`, [scheduleId, since]);
  }

  async scheduleHasActive(scheduleId: number): Promise<boolean> {
    return (await this.db.get(`SELECT 1 AS one FROM runs WHERE schedule_id = ? AND state IN ('dispatching', 'pending', 'running') LIMIT 1`, [scheduleId])) !== undefined;
  }

  async markDispatched(id: number): Promise<void> { await this.db.run(`UPDATE runs SET state = 'pending', dispatched_at = ? WHERE id = ? AND state = 'dispatching'`, [Date.now(), id]); }
  async markCancelRequested(id: number): Promise<void> { await this.db.run(`UPDATE runs SET cancel_requested = 1 WHERE id = ?`, [id]); }

  async update(row: RunRow, changes: Partial<Pick<RunRow, 'state' | 'outcome' | 'started_at' | 'ended_at' | 'exit_code' | 'items_count' | 'error_count' | 'note'>>): Promise<RunRow> {
    const next = { ...row, ...changes };
    await this.db.run(`UPDATE runs SET state = @state, outcome = @outcome, started_at = @started_at, ended_at = @ended_at,
                          exit_code = @exit_code, items_count = @items_count, error_count = @error_count, note = @note WHERE id = @id`, next);
    return next;
  }

  /** Runs that ended since `since` and the alert rules have not looked at (the master stopped in between). */
  endedUnchecked(since: number): Promise<RunRow[]> {
    return this.db.all<RunRow>(`SELECT * FROM runs WHERE ended_at >= ? AND state IN ('finished', 'lost', 'failed')
                            AND id NOT IN (SELECT run_id FROM alert_run_checks) ORDER BY ended_at, id`, [since]);
  }

  /** The alert rules have looked at this ended run (marks older than 3 days are dropped). */
  async markAlertChecked(runId: number, at: number): Promise<void> {
    await this.db.run(`INSERT INTO alert_run_checks (run_id, checked_at) VALUES (?, ?) ON CONFLICT DO NOTHING`, [runId, at]);
    await this.db.run(`DELETE FROM alert_run_checks WHERE checked_at < ?`, [at - 3 * 24 * 3600_000]);
  }

  /** Runs per state, exact, from run_counts (O(1)). */
  async counts(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of await this.db.all<{ state: string; n: number }>(`SELECT state, n FROM run_counts WHERE n > 0`)) out[r.state] = r.n;
    return out;
  }

  /** How the runs created since `since` ended (or stand), by state and outcome. */
  async summarySince(since: number): Promise<{ finished: number; failed: number; lost: number; cancelled: number }> {
    const r = (await this.db.get<Record<string, number | null>>(`SELECT
        SUM(CASE WHEN state = 'finished' AND outcome IN ('succeeded', 'finished', 'finished_with_errors') THEN 1 ELSE 0 END) AS finished,
        SUM(CASE WHEN state = 'failed' OR (state = 'finished' AND outcome IN ('failed', 'timeout', 'memory')) THEN 1 ELSE 0 END) AS failed,
        SUM(CASE WHEN state = 'lost' THEN 1 ELSE 0 END) AS lost,
        SUM(CASE WHEN state = 'finished' AND outcome = 'cancelled' THEN 1 ELSE 0 END) AS cancelled
      FROM ${this.runsBy('runs_created')} WHERE created_at >= ?`, [since]))!;
    return { finished: Number(r.finished ?? 0), failed: Number(r.failed ?? 0), lost: Number(r.lost ?? 0), cancelled: Number(r.cancelled ?? 0) };
  }

  /** Recent runs that went wrong (failed, stopped by a limit, lost, finished with errors, or logged errors), newest first. */
  recentProblems(since: number, limit: number): Promise<RunRow[]> {
    // INDEXED BY: read the window's runs only (a scan by id would walk the whole history when problems are rare).
    return this.db.all<RunRow>(`SELECT * FROM ${this.runsBy('runs_created')} WHERE created_at >= ? AND (state IN ('failed', 'lost') OR outcome IN ('failed', 'finished_with_errors', 'timeout', 'memory') OR error_count > 0)
                            ORDER BY id DESC LIMIT ?`, [since, limit]);
  }

  async pendingList(project?: string): Promise<RunRow[]> {
    const rows = await this.db.all<RunRow>(`SELECT * FROM ${this.runsBy('runs_waiting')} WHERE state IN ('dispatching', 'pending') ORDER BY priority DESC, id`);
    return project === undefined ? rows : rows.filter((r) => r.project === project);
  }
  async runningList(project?: string): Promise<RunRow[]> {
    const rows = await this.db.all<RunRow>(`SELECT * FROM ${this.runsBy('runs_running')} WHERE state = 'running' ORDER BY started_at, id`);
    return project === undefined ? rows : rows.filter((r) => r.project === project);
  }
  /** The newest ended runs (of one project: filtered before the limit, so a quiet project still gets its own newest). */
  finishedList(limit: number, project?: string): Promise<RunRow[]> {
    return project === undefined
      ? this.db.all<RunRow>(`SELECT * FROM ${this.runsBy('runs_ended_list')} WHERE state IN ('finished', 'lost', 'failed') ORDER BY ended_at DESC, id DESC LIMIT ?`, [limit])
      : this.db.all<RunRow>(`SELECT * FROM ${this.runsBy('runs_ended_project')} WHERE state IN ('finished', 'lost', 'failed') AND project = ? ORDER BY ended_at DESC, id DESC LIMIT ?`, [project, limit]);
  }

  /** Every run the master holds, from run_counts. */
  async total(): Promise<number> {
    return Object.values(await this.counts()).reduce((a, b) => a + b, 0);
  }

  // Retention: the oldest ended runs first, through runs_ended_list; a lost run its node may
  // still give back (LOST_TAKE_BACK_MS) is never taken.

  /** Deletes up to `limit` of the oldest ended runs that ended before `before`; returns how many (times rounded: --history-days may be fractional). */
  pruneEndedBefore(before: number, limit: number, now = Date.now()): Promise<number> {
    return this.db.run(`DELETE FROM runs WHERE id IN (SELECT id FROM ${this.runsBy('runs_ended_list')} WHERE state IN ('finished', 'lost', 'failed') AND ended_at < @before
                               AND (state <> 'lost' OR ended_at < @lostBefore) ORDER BY ended_at, id LIMIT @limit)`, { before: Math.round(before), lostBefore: Math.round(now - LOST_TAKE_BACK_MS), limit });
  }

  /** Deletes up to `limit` of the oldest ended runs (for a cap on the number kept); returns how many. */
  pruneOldestEnded(limit: number, now = Date.now()): Promise<number> {
    return this.db.run(`DELETE FROM runs WHERE id IN (SELECT id FROM ${this.runsBy('runs_ended_list')} WHERE state IN ('finished', 'lost', 'failed')
                               AND (state <> 'lost' OR ended_at < @lostBefore) ORDER BY ended_at, id LIMIT @limit)`, { lostBefore: Math.round(now - LOST_TAKE_BACK_MS), limit });
  }

  async query(f: RunFilter): Promise<{ runs: RunRow[]; total: number; total_exact: boolean }> {
    const where: string[] = [];
    const params: Array<string | number> = [];
    if (f.state === 'active') where.push(`state IN ('dispatching', 'pending', 'running')`);
    else if (f.state !== undefined) { where.push('state = ?'); params.push(f.state); }
    for (const k of ['node', 'project', 'spider', 'schedule_id'] as const) {
      if (f[k] !== undefined) { where.push(`${k} = ?`); params.push(f[k]); }
    }
    if (f.since !== undefined) { where.push('created_at >= ?'); params.push(f.since); }
    const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const runs = f.limit === 0 ? [] : await this.db.all<RunRow>(`SELECT * FROM runs ${w} ORDER BY id DESC LIMIT ? OFFSET ?`, [...params, f.limit, f.offset]);
    return { runs, ...await this.countOf(f, w, params) };
  }

  /**
   * The total behind a filter: exact from run_counts when only the state (or nothing) is filtered,
   * else counted through the filter's index up to COUNT_CAP rows (`exact: false` beyond it).
   */
  private async countOf(f: RunFilter, w: string, params: Array<string | number>): Promise<{ total: number; total_exact: boolean }> {
    const onlyState = f.node === undefined && f.project === undefined && f.spider === undefined && f.schedule_id === undefined && f.since === undefined;
    if (onlyState) {
      const c = await this.counts();
      const states = f.state === undefined ? Object.keys(c) : f.state === 'active' ? ACTIVE_STATES : [f.state];
      return { total: states.reduce((a, s) => a + (c[s] ?? 0), 0), total_exact: true };
    }
    const n = (await this.db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM (SELECT 1 FROM runs ${w} LIMIT ${COUNT_CAP + 1}) AS capped`, params))!.n;
    return n > COUNT_CAP ? { total: COUNT_CAP, total_exact: false } : { total: n, total_exact: true };
  }
}

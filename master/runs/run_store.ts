import type { Db } from '../../common/sqlite.ts';

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
 * no request reads the whole history, however long it is.
 */
export class RunStore {
  private readonly s;

  constructor(private readonly db: Db) {
    this.s = {
      insert: db.prepare(`INSERT INTO runs (job, project, spider, version, args, settings, priority, node_id, node, state, schedule_id,
                          retry_of, attempt, retries_left, created_at, created_by)
                          VALUES (@job, @project, @spider, @version, @args, @settings, @priority, @node_id, @node, 'dispatching', @schedule_id,
                          @retry_of, @attempt, @retries_left, @created_at, @created_by)`),
      byId: db.prepare(`SELECT * FROM runs WHERE id = ?`),
      byJob: db.prepare(`SELECT * FROM runs WHERE job = ?`),
      activeOfNode: db.prepare(`SELECT * FROM runs WHERE node_id = ? AND state IN ('dispatching', 'pending', 'running')`),
      lostOfNode: db.prepare(`SELECT runs.*, EXISTS (SELECT 1 FROM runs r2 WHERE r2.retry_of = runs.id) AS has_successor
                              FROM runs WHERE node_id = ? AND state = 'lost' AND ended_at > ? AND outcome = 'lost'`),
      active: db.prepare(`SELECT * FROM runs WHERE state IN ('dispatching', 'pending', 'running') ORDER BY id`),
      activeOfSchedule: db.prepare(`SELECT COUNT(*) AS n FROM runs WHERE schedule_id = ? AND state IN ('dispatching', 'pending', 'running')`),
      dispatched: db.prepare(`UPDATE runs SET state = 'pending', dispatched_at = ? WHERE id = ? AND state = 'dispatching'`),
      update: db.prepare(`UPDATE runs SET state = @state, outcome = @outcome, started_at = @started_at, ended_at = @ended_at,
                          exit_code = @exit_code, items_count = @items_count, error_count = @error_count, note = @note WHERE id = @id`),
      cancelRequested: db.prepare(`UPDATE runs SET cancel_requested = 1 WHERE id = ?`),
      counts: db.prepare(`SELECT state, n FROM run_counts WHERE n > 0`),
      // INDEXED BY: the plan must not depend on the planner's guess (a wrong one sorts the whole history).
      finishedAll: db.prepare(`SELECT * FROM runs INDEXED BY runs_ended_list WHERE state IN ('finished', 'lost', 'failed') ORDER BY ended_at DESC, id DESC LIMIT ?`),
      finishedOf: db.prepare(`SELECT * FROM runs INDEXED BY runs_ended_project WHERE state IN ('finished', 'lost', 'failed') AND project = ? ORDER BY ended_at DESC, id DESC LIMIT ?`),
      pendingAll: db.prepare(`SELECT * FROM runs INDEXED BY runs_waiting WHERE state IN ('dispatching', 'pending') ORDER BY priority DESC, id`),
      runningAll: db.prepare(`SELECT * FROM runs INDEXED BY runs_running WHERE state = 'running' ORDER BY started_at, id`),
      // Retention: the oldest ended runs first, through runs_ended_list; a lost run its node may
      // still give back (LOST_TAKE_BACK_MS) is never taken.
      pruneBefore: db.prepare(`DELETE FROM runs WHERE id IN (SELECT id FROM runs INDEXED BY runs_ended_list WHERE state IN ('finished', 'lost', 'failed') AND ended_at < @before
                               AND (state <> 'lost' OR ended_at < @lostBefore) ORDER BY ended_at, id LIMIT @limit)`),
      pruneOldest: db.prepare(`DELETE FROM runs WHERE id IN (SELECT id FROM runs INDEXED BY runs_ended_list WHERE state IN ('finished', 'lost', 'failed')
                               AND (state <> 'lost' OR ended_at < @lostBefore) ORDER BY ended_at, id LIMIT @limit)`),
      successorsOf: db.prepare(`SELECT * FROM runs WHERE retry_of = ? ORDER BY id`),
    };
  }

  insert(r: NewRun): RunRow {
    const id = Number(this.s.insert.run({ ...r, args: JSON.stringify(r.args), settings: JSON.stringify(r.settings), created_at: Date.now() }).lastInsertRowid);
    // A service replica is tagged before it is sent to a node, so a master restart never loses track of it.
    if (r.service_id) this.db.prepare(`UPDATE runs SET service_id = ? WHERE id = ?`).run(r.service_id, id);
    return this.get(id)!;
  }

  /** Active replicas of every service (dispatching, pending, running). */
  activeReplicas(): RunRow[] {
    return this.db.prepare(`SELECT * FROM runs WHERE service_id IS NOT NULL AND state IN ('dispatching', 'pending', 'running') ORDER BY id`).all() as RunRow[];
  }

  /** Replicas of a service that ended at or after `since`, newest first (restart backoff, crash loops, rolls). */
  endedReplicasSince(serviceId: number, since: number): RunRow[] {
    return this.db.prepare(`SELECT * FROM runs WHERE service_id = ? AND ended_at >= ? ORDER BY ended_at DESC LIMIT 200`).all(serviceId, since) as RunRow[];
  }

  get(id: number): RunRow | undefined { return this.s.byId.get(id) as RunRow | undefined; }
  byJob(job: string): RunRow | undefined { return this.s.byJob.get(job) as RunRow | undefined; }
  activeOfNode(nodeId: number): RunRow[] { return this.s.activeOfNode.all(nodeId) as RunRow[]; }
  /** Runs lost with this node since `since`, and whether each was re-run elsewhere. */
  lostOfNode(nodeId: number, since: number): Array<RunRow & { has_successor: number }> { return this.s.lostOfNode.all(nodeId, since) as Array<RunRow & { has_successor: number }>; }
  active(): RunRow[] { return this.s.active.all() as RunRow[]; }
  /** The runs that repeat this one (failovers, retries, and each node tried for them). */
  successorsOf(id: number): RunRow[] { return this.s.successorsOf.all(id) as RunRow[]; }
  /** Runs a schedule started at or after `since` (to tell whether an interrupted fire got as far as dispatching). */
  ofScheduleSince(scheduleId: number, since: number): RunRow[] {
    return this.db.prepare(`SELECT * FROM runs WHERE schedule_id = ? AND created_at >= ? ORDER BY id`).all(scheduleId, since) as RunRow[];
  }

  scheduleHasActive(scheduleId: number): boolean { return (this.s.activeOfSchedule.get(scheduleId) as { n: number }).n > 0; }

  markDispatched(id: number): void { this.s.dispatched.run(Date.now(), id); }
  markCancelRequested(id: number): void { this.s.cancelRequested.run(id); }

  update(row: RunRow, changes: Partial<Pick<RunRow, 'state' | 'outcome' | 'started_at' | 'ended_at' | 'exit_code' | 'items_count' | 'error_count' | 'note'>>): RunRow {
    const next = { ...row, ...changes };
    this.s.update.run(next);
    return next;
  }

  /** Runs that ended since `since` and the alert rules have not looked at (the master stopped in between). */
  endedUnchecked(since: number): RunRow[] {
    return this.db.prepare(`SELECT * FROM runs WHERE ended_at >= ? AND state IN ('finished', 'lost', 'failed')
                            AND id NOT IN (SELECT run_id FROM alert_run_checks) ORDER BY ended_at, id`).all(since) as RunRow[];
  }

  /** The alert rules have looked at this ended run (marks older than 3 days are dropped). */
  markAlertChecked(runId: number, at: number): void {
    this.db.prepare(`INSERT OR IGNORE INTO alert_run_checks (run_id, checked_at) VALUES (?, ?)`).run(runId, at);
    this.db.prepare(`DELETE FROM alert_run_checks WHERE checked_at < ?`).run(at - 3 * 24 * 3600_000);
  }

  /** Runs per state, exact, from run_counts (O(1)). */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.s.counts.all() as Array<{ state: string; n: number }>) out[r.state] = r.n;
    return out;
  }

  /** How the runs created since `since` ended (or stand), by state and outcome. */
  summarySince(since: number): { finished: number; failed: number; lost: number; cancelled: number } {
    const r = this.db.prepare(`SELECT
        SUM(state = 'finished' AND outcome IN ('succeeded', 'finished', 'finished_with_errors')) AS finished,
        SUM(state = 'failed' OR (state = 'finished' AND outcome IN ('failed', 'timeout', 'memory'))) AS failed,
        SUM(state = 'lost') AS lost,
        SUM(state = 'finished' AND outcome = 'cancelled') AS cancelled
      FROM runs INDEXED BY runs_created WHERE created_at >= ?`).get(since) as Record<string, number | null>;
    return { finished: r.finished ?? 0, failed: r.failed ?? 0, lost: r.lost ?? 0, cancelled: r.cancelled ?? 0 };
  }

  /** Recent runs that went wrong (failed, stopped by a limit, lost, finished with errors, or logged errors), newest first. */
  recentProblems(since: number, limit: number): RunRow[] {
    // INDEXED BY: read the window's runs only (a scan by id would walk the whole history when problems are rare).
    return this.db.prepare(`SELECT * FROM runs INDEXED BY runs_created WHERE created_at >= ? AND (state IN ('failed', 'lost') OR outcome IN ('failed', 'finished_with_errors', 'timeout', 'memory') OR error_count > 0)
                            ORDER BY id DESC LIMIT ?`).all(since, limit) as RunRow[];
  }

  pendingList(project?: string): RunRow[] {
    const rows = this.s.pendingAll.all() as RunRow[];
    return project === undefined ? rows : rows.filter((r) => r.project === project);
  }
  runningList(project?: string): RunRow[] {
    const rows = this.s.runningAll.all() as RunRow[];
    return project === undefined ? rows : rows.filter((r) => r.project === project);
  }
  /** The newest ended runs (of one project: filtered before the limit, so a quiet project still gets its own newest). */
  finishedList(limit: number, project?: string): RunRow[] {
    return (project === undefined ? this.s.finishedAll.all(limit) : this.s.finishedOf.all(project, limit)) as RunRow[];
  }

  /** Every run the master holds, from run_counts. */
  total(): number {
    return Object.values(this.counts()).reduce((a, b) => a + b, 0);
  }

  /** Deletes up to `limit` of the oldest ended runs that ended before `before`; returns how many. */
  pruneEndedBefore(before: number, limit: number, now = Date.now()): number {
    return this.s.pruneBefore.run({ before, lostBefore: now - LOST_TAKE_BACK_MS, limit }).changes;
  }

  /** Deletes up to `limit` of the oldest ended runs (for a cap on the number kept); returns how many. */
  pruneOldestEnded(limit: number, now = Date.now()): number {
    return this.s.pruneOldest.run({ lostBefore: now - LOST_TAKE_BACK_MS, limit }).changes;
  }

  query(f: RunFilter): { runs: RunRow[]; total: number; total_exact: boolean } {
    const where: string[] = [];
    const params: unknown[] = [];
    if (f.state === 'active') where.push(`state IN ('dispatching', 'pending', 'running')`);
    else if (f.state !== undefined) { where.push('state = ?'); params.push(f.state); }
    for (const k of ['node', 'project', 'spider', 'schedule_id'] as const) {
      if (f[k] !== undefined) { where.push(`${k} = ?`); params.push(f[k]); }
    }
    if (f.since !== undefined) { where.push('created_at >= ?'); params.push(f.since); }
    const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const runs = f.limit === 0 ? [] : this.db.prepare(`SELECT * FROM runs ${w} ORDER BY id DESC LIMIT ? OFFSET ?`).all(...params, f.limit, f.offset) as RunRow[];
    return { runs, ...this.countOf(f, w, params) };
  }

  /**
   * The total behind a filter: exact from run_counts when only the state (or nothing) is filtered,
   * else counted through the filter's index up to COUNT_CAP rows (`exact: false` beyond it).
   */
  private countOf(f: RunFilter, w: string, params: unknown[]): { total: number; total_exact: boolean } {
    const onlyState = f.node === undefined && f.project === undefined && f.spider === undefined && f.schedule_id === undefined && f.since === undefined;
    if (onlyState) {
      const c = this.counts();
      const states = f.state === undefined ? Object.keys(c) : f.state === 'active' ? ACTIVE_STATES : [f.state];
      return { total: states.reduce((a, s) => a + (c[s] ?? 0), 0), total_exact: true };
    }
    const n = (this.db.prepare(`SELECT COUNT(*) AS n FROM (SELECT 1 FROM runs ${w} LIMIT ${COUNT_CAP + 1})`).get(...params) as { n: number }).n;
    return n > COUNT_CAP ? { total: COUNT_CAP, total_exact: false } : { total: n, total_exact: true };
  }
}

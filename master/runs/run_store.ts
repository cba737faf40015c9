import type { Db } from '../../common/sqlite.ts';

export type RunState = 'dispatching' | 'pending' | 'running' | 'finished' | 'lost' | 'failed';
export const ACTIVE_STATES: readonly RunState[] = ['dispatching', 'pending', 'running'];

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

/** Every SQL statement about runs: the master's record of each job it sent to a node. */
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
                              FROM runs WHERE node_id = ? AND state = 'lost' AND outcome = 'lost' AND ended_at > ?`),
      active: db.prepare(`SELECT * FROM runs WHERE state IN ('dispatching', 'pending', 'running') ORDER BY id`),
      activeOfSchedule: db.prepare(`SELECT COUNT(*) AS n FROM runs WHERE schedule_id = ? AND state IN ('dispatching', 'pending', 'running')`),
      dispatched: db.prepare(`UPDATE runs SET state = 'pending', dispatched_at = ? WHERE id = ? AND state = 'dispatching'`),
      update: db.prepare(`UPDATE runs SET state = @state, outcome = @outcome, started_at = @started_at, ended_at = @ended_at,
                          exit_code = @exit_code, items_count = @items_count, error_count = @error_count, note = @note WHERE id = @id`),
      cancelRequested: db.prepare(`UPDATE runs SET cancel_requested = 1 WHERE id = ?`),
      counts: db.prepare(`SELECT state, COUNT(*) AS n FROM runs GROUP BY state`),
      finishedAll: db.prepare(`SELECT * FROM runs WHERE state IN ('finished', 'lost', 'failed') ORDER BY ended_at DESC, id DESC LIMIT ?`),
      pendingAll: db.prepare(`SELECT * FROM runs WHERE state IN ('dispatching', 'pending') ORDER BY priority DESC, id`),
      runningAll: db.prepare(`SELECT * FROM runs WHERE state = 'running' ORDER BY started_at, id`),
      successorsOf: db.prepare(`SELECT * FROM runs WHERE retry_of = ? ORDER BY id`),
    };
  }

  insert(r: NewRun): RunRow {
    const id = Number(this.s.insert.run({ ...r, args: JSON.stringify(r.args), settings: JSON.stringify(r.settings), created_at: Date.now() }).lastInsertRowid);
    return this.get(id)!;
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

  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.s.counts.all() as Array<{ state: string; n: number }>) out[r.state] = r.n;
    return out;
  }

  /** How the runs created since `since` ended (or stand), by state and outcome. */
  summarySince(since: number): { finished: number; failed: number; lost: number; cancelled: number } {
    const r = this.db.prepare(`SELECT
        SUM(state = 'finished' AND outcome IN ('succeeded', 'finished', 'finished_with_errors')) AS finished,
        SUM(state = 'failed' OR (state = 'finished' AND outcome = 'failed')) AS failed,
        SUM(state = 'lost') AS lost,
        SUM(state = 'finished' AND outcome = 'cancelled') AS cancelled
      FROM runs WHERE created_at >= ?`).get(since) as Record<string, number | null>;
    return { finished: r.finished ?? 0, failed: r.failed ?? 0, lost: r.lost ?? 0, cancelled: r.cancelled ?? 0 };
  }

  /** Recent runs that went wrong (failed, lost, or logged errors), newest first. */
  recentProblems(since: number, limit: number): RunRow[] {
    return this.db.prepare(`SELECT * FROM runs WHERE created_at >= ? AND (state IN ('failed', 'lost') OR outcome IN ('failed', 'finished_with_errors') OR error_count > 0)
                            ORDER BY id DESC LIMIT ?`).all(since, limit) as RunRow[];
  }

  pendingList(): RunRow[] { return this.s.pendingAll.all() as RunRow[]; }
  runningList(): RunRow[] { return this.s.runningAll.all() as RunRow[]; }
  finishedList(limit: number): RunRow[] { return this.s.finishedAll.all(limit) as RunRow[]; }

  query(f: RunFilter): { runs: RunRow[]; total: number } {
    const where: string[] = [];
    const params: unknown[] = [];
    if (f.state === 'active') where.push(`state IN ('dispatching', 'pending', 'running')`);
    else if (f.state !== undefined) { where.push('state = ?'); params.push(f.state); }
    for (const k of ['node', 'project', 'spider', 'schedule_id'] as const) {
      if (f[k] !== undefined) { where.push(`${k} = ?`); params.push(f[k]); }
    }
    if (f.since !== undefined) { where.push('created_at >= ?'); params.push(f.since); }
    const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const runs = this.db.prepare(`SELECT * FROM runs ${w} ORDER BY id DESC LIMIT ? OFFSET ?`).all(...params, f.limit, f.offset) as RunRow[];
    const total = (this.db.prepare(`SELECT COUNT(*) AS n FROM runs ${w}`).get(...params) as { n: number }).n;
    return { runs, total };
  }
}

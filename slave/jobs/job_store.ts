import type { Db } from '../../common/sqlite.ts';
import type { JobOutcome, JobState } from '../../common/types.ts';
import { nowSeconds } from '../../common/scrapyd_time.ts';

export interface JobRow {
  uid: number;
  id: string;
  project: string;
  spider: string;
  version: string | null;
  run_version: string | null;
  priority: number;
  args: string;
  settings: string;
  state: JobState;
  created_at: number;
  start_time: number | null;
  end_time: number | null;
  pid: number | null;
  proc_start: string | null;
  exit_code: number | null;
  signal: string | null;
  outcome: JobOutcome | null;
  cancels: number;
  items_count: number | null;
  error_count: number | null;
  log_exists: number;
  items_exists: number;
  stats: string | null;
  note: string | null;
}

export interface NewJob {
  id: string;
  project: string;
  spider: string;
  version: string | null;
  priority: number;
  args: Record<string, string>;
  settings: Record<string, string>;
}

export interface FinishFields {
  end_time: number;
  exit_code: number | null;
  signal: string | null;
  outcome: JobOutcome;
  items_count: number | null;
  error_count: number | null;
  items_exists: boolean;
  log_exists: boolean;
  stats: string | null;
  note: string | null;
}

export interface ErrorRow {
  job_uid: number;
  job: string;
  project: string;
  spider: string;
  time: string;
  level: string;
  logger: string;
  message: string;
  traceback: string | null;
}

/** Every SQL statement about jobs lives here; the rest of the slave speaks in rows. */
export class JobStore {
  private readonly s;

  constructor(private readonly db: Db) {
    this.s = {
      insert: db.prepare(`INSERT INTO jobs (id, project, spider, version, priority, args, settings, state, created_at)
                          VALUES (@id, @project, @spider, @version, @priority, @args, @settings, 'pending', @created_at)`),
      nextPending: db.prepare(`SELECT * FROM jobs WHERE state = 'pending' ORDER BY priority DESC, uid LIMIT 1`),
      byUid: db.prepare(`SELECT * FROM jobs WHERE uid = ?`),
      markRunning: db.prepare(`UPDATE jobs SET state = 'running', start_time = @start_time, pid = @pid, proc_start = @proc_start,
                               run_version = @run_version, log_exists = 1 WHERE uid = @uid AND state = 'pending'`),
      markFinished: db.prepare(`UPDATE jobs SET state = 'finished', end_time = @end_time, exit_code = @exit_code, signal = @signal,
                                outcome = @outcome, items_count = @items_count, error_count = @error_count,
                                items_exists = @items_exists, log_exists = @log_exists, stats = @stats, note = @note WHERE uid = @uid`),
      finishPendingNow: db.prepare(`UPDATE jobs SET state = 'finished', start_time = @t, end_time = @t, outcome = 'failed', note = @note WHERE uid = @uid`),
      countCancel: db.prepare(`UPDATE jobs SET cancels = cancels + 1 WHERE uid = ? RETURNING cancels`),
      deletePending: db.prepare(`DELETE FROM jobs WHERE state = 'pending' AND project = ? AND id = ?`),
      pendingAll: db.prepare(`SELECT * FROM jobs WHERE state = 'pending' ORDER BY priority DESC, uid`),
      pendingOf: db.prepare(`SELECT * FROM jobs WHERE state = 'pending' AND project = ? ORDER BY priority DESC, uid`),
      runningAll: db.prepare(`SELECT * FROM jobs WHERE state = 'running' ORDER BY start_time, uid`),
      runningOf: db.prepare(`SELECT * FROM jobs WHERE state = 'running' AND project = ? ORDER BY start_time, uid`),
      finishedAll: db.prepare(`SELECT uid, id, project, spider, start_time, end_time, log_exists, items_exists FROM jobs
                               WHERE state = 'finished' ORDER BY end_time DESC LIMIT ? OFFSET ?`),
      finishedOf: db.prepare(`SELECT uid, id, project, spider, start_time, end_time, log_exists, items_exists FROM jobs
                              WHERE state = 'finished' AND project = ? ORDER BY end_time DESC LIMIT ? OFFSET ?`),
      counts: db.prepare(`SELECT state, n FROM job_counts`),
      statesOf: db.prepare(`SELECT state FROM jobs WHERE id = ?`),
      statesOfIn: db.prepare(`SELECT state FROM jobs WHERE id = ? AND project = ?`),
      runningById: db.prepare(`SELECT * FROM jobs WHERE state = 'running' AND project = ? AND id = ?`),
      // The oldest finished jobs, through jobs_state (state, end_time DESC) read backwards: no sort, no scan.
      oldestFinished: db.prepare(`SELECT uid FROM jobs WHERE state = 'finished' ORDER BY end_time LIMIT ?`),
      deleteJob: db.prepare(`DELETE FROM jobs WHERE uid = ?`),
      capErrors: db.prepare(`DELETE FROM errors WHERE seq <= (SELECT MAX(seq) FROM errors) - ?`),
      filesOf: db.prepare(`SELECT uid, id, log_exists, items_exists FROM jobs
                           WHERE project = ? AND spider = ? AND state = 'finished' AND (log_exists = 1 OR items_exists = 1)
                           ORDER BY end_time DESC`),
      clearFiles: db.prepare(`UPDATE jobs SET log_exists = 0, items_exists = 0 WHERE uid = ?`),
      insertError: db.prepare(`INSERT INTO errors (job_uid, job, project, spider, time, level, logger, message, traceback)
                               VALUES (@job_uid, @job, @project, @spider, @time, @level, @logger, @message, @traceback)`),
      deleteErrorsOf: db.prepare(`DELETE FROM errors WHERE job_uid = ?`),
      withStats: db.prepare(`SELECT uid, id, project, spider, stats FROM jobs WHERE state = 'finished' AND stats IS NOT NULL AND log_exists = 1`),
      latestById: db.prepare(`SELECT * FROM jobs WHERE project = ? AND spider = ? AND id = ? ORDER BY uid DESC LIMIT 1`),
      setNote: db.prepare(`UPDATE jobs SET note = ? WHERE uid = ?`),
      previousItems: db.prepare(`SELECT items_count FROM jobs WHERE project = ? AND state = 'finished' AND spider = ? AND uid <> ? AND end_time <= ?
                                 AND outcome IN ('succeeded', 'finished_with_errors') AND items_count IS NOT NULL ORDER BY end_time DESC LIMIT 1`),
    };
  }

  enqueue(job: NewJob): number {
    const r = this.s.insert.run({
      ...job,
      args: JSON.stringify(job.args),
      settings: JSON.stringify(job.settings),
      created_at: nowSeconds(),
    });
    return Number(r.lastInsertRowid);
  }

  nextPending(): JobRow | undefined { return this.s.nextPending.get() as JobRow | undefined; }
  get(uid: number): JobRow | undefined { return this.s.byUid.get(uid) as JobRow | undefined; }

  markRunning(uid: number, f: { start_time: number; pid: number; proc_start: string | null; run_version: string | null }): boolean {
    return this.s.markRunning.run({ uid, ...f }).changes === 1;
  }

  markFinished(uid: number, f: FinishFields): void {
    this.s.markFinished.run({ uid, ...f, items_exists: f.items_exists ? 1 : 0, log_exists: f.log_exists ? 1 : 0 });
  }

  /** A pending job that cannot start (its version vanished, say) is finished as failed with the reason. */
  failPending(uid: number, note: string): void { this.s.finishPendingNow.run({ uid, t: nowSeconds(), note }); }

  countCancel(uid: number): number { return (this.s.countCancel.get(uid) as { cancels: number }).cancels; }
  removePending(project: string, id: string): number { return this.s.deletePending.run(project, id).changes; }

  pending(project?: string): JobRow[] { return (project === undefined ? this.s.pendingAll.all() : this.s.pendingOf.all(project)) as JobRow[]; }
  running(project?: string): JobRow[] { return (project === undefined ? this.s.runningAll.all() : this.s.runningOf.all(project)) as JobRow[]; }
  runningById(project: string, id: string): JobRow[] { return this.s.runningById.all(project, id) as JobRow[]; }
  latestById(project: string, spider: string, id: string): JobRow | undefined { return this.s.latestById.get(project, spider, id) as JobRow | undefined; }

  /** The newest finished jobs (newest first), from `offset` on: a long list is read a page at a time. */
  finished(limit: number, project?: string, offset = 0): Array<Pick<JobRow, 'uid' | 'id' | 'project' | 'spider' | 'start_time' | 'end_time' | 'log_exists' | 'items_exists'>> {
    return (project === undefined ? this.s.finishedAll.all(limit, offset) : this.s.finishedOf.all(project, limit, offset)) as JobRow[];
  }

  counts(): Record<JobState, number> {
    const out: Record<JobState, number> = { pending: 0, running: 0, finished: 0 };
    for (const r of this.s.counts.all() as Array<{ state: JobState; n: number }>) out[r.state] = r.n;
    return out;
  }

  states(id: string, project?: string): JobState[] {
    const rows = (project === undefined ? this.s.statesOf.all(id) : this.s.statesOfIn.all(id, project)) as Array<{ state: JobState }>;
    return rows.map((r) => r.state);
  }

  /**
   * Deletes the oldest finished jobs beyond `keep`, at most `batch` of them (with their error
   * lines), in one short transaction; returns how many went. Called in a loop off the job-end path.
   */
  pruneFinished(keep: number, batch = 500): number {
    return this.db.transaction(() => {
      const over = this.counts().finished - keep;
      if (over <= 0) return 0;
      const uids = (this.s.oldestFinished.all(Math.min(over, batch)) as Array<{ uid: number }>).map((r) => r.uid);
      for (const uid of uids) {
        this.s.deleteErrorsOf.run(uid);
        this.s.deleteJob.run(uid);
      }
      return uids.length;
    })();
  }

  /** Finished jobs of a spider that still have files, newest first. */
  jobsWithFiles(project: string, spider: string): Array<Pick<JobRow, 'uid' | 'id' | 'log_exists' | 'items_exists'>> {
    return this.s.filesOf.all(project, spider) as JobRow[];
  }
  clearFiles(uid: number): void { this.s.clearFiles.run(uid); }

  replaceErrors(jobUid: number, rows: ErrorRow[], cap: number): void {
    this.db.transaction(() => {
      this.s.deleteErrorsOf.run(jobUid);
      for (const r of rows) this.s.insertError.run(r);
      this.s.capErrors.run(cap);
    })();
  }

  recentErrors(f: { limit: number; project?: string; job?: string }): Array<ErrorRow & { seq: number }> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (f.project !== undefined) { where.push('project = ?'); params.push(f.project); }
    if (f.job !== undefined) { where.push('job = ?'); params.push(f.job); }
    const sql = `SELECT * FROM errors ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq DESC LIMIT ?`;
    return this.db.prepare(sql).all(...params, f.limit) as Array<ErrorRow & { seq: number }>;
  }

  finishedWithStats(): Array<Pick<JobRow, 'uid' | 'id' | 'project' | 'spider' | 'stats'>> { return this.s.withStats.all() as JobRow[]; }

  /**
   * Filtered, paginated jobs for the /jobs.json extension: running, then pending (queue order),
   * then finished newest first. Each state is read with its own index-friendly ORDER BY.
   */
  query(f: { state?: JobState; project?: string; spider?: string; id?: string; limit: number; offset: number }): JobRow[] {
    const order: Record<JobState, string> = { running: 'start_time DESC, uid DESC', pending: 'priority DESC, uid', finished: 'end_time DESC, uid DESC' };
    const states: JobState[] = f.state ? [f.state] : ['running', 'pending', 'finished'];
    const out: JobRow[] = [];
    let skip = f.offset;
    for (const state of states) {
      const want = f.limit - out.length;
      if (want <= 0) break;
      const where = ['state = ?'];
      const params: unknown[] = [state];
      for (const k of ['project', 'spider', 'id'] as const) {
        if (f[k] !== undefined) { where.push(`${k} = ?`); params.push(f[k]); }
      }
      const rows = this.db.prepare(`SELECT * FROM jobs WHERE ${where.join(' AND ')} ORDER BY ${order[state]} LIMIT ? OFFSET ?`).all(...params, want, skip) as JobRow[];
      if (skip > 0) {
        const total = (this.db.prepare(`SELECT COUNT(*) AS n FROM jobs WHERE ${where.join(' AND ')}`).get(...params) as { n: number }).n;
        skip = Math.max(0, skip - total);
      }
      out.push(...rows);
    }
    return out;
  }

  setNote(uid: number, note: string): void { this.s.setNote.run(note, uid); }

  /** Items of the spider's last completed run that ended before this one (null: none). */
  previousItems(row: Pick<JobRow, 'uid' | 'project' | 'spider' | 'end_time'>): number | null {
    const r = this.s.previousItems.get(row.project, row.spider, row.uid, row.end_time ?? Number.MAX_VALUE) as { items_count: number } | undefined;
    return r ? r.items_count : null;
  }
}

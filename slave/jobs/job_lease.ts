import type { Db } from '../../common/sqlite.ts';

// The keep_running column of the jobs table (schedule.json's _keep_running), kept apart from
// JobStore so the lease feature stays in its own files. NULL = not given: the run is kept.

export class JobLeaseStore {
  private readonly s;

  constructor(db: Db) {
    this.s = {
      set: db.prepare(`UPDATE jobs SET keep_running = ? WHERE uid = ?`),
      get: db.prepare(`SELECT keep_running FROM jobs WHERE uid = ?`),
      setProcess: db.prepare(`UPDATE jobs SET pid = ?, proc_start = ? WHERE uid = ? AND state = 'running'`),
    };
  }

  setKeepRunning(uid: number, keep: boolean): void { this.s.set.run(keep ? 1 : 0, uid); }

  /** True unless the job was sent with _keep_running=0 (only the master's failover-able runs are). */
  keepsRunning(uid: number): boolean {
    const row = this.s.get.get(uid) as { keep_running: number | null } | undefined;
    return row?.keep_running !== 0;
  }

  /** The spider's pid, known once its keeper started it (a moment after the job was marked running). */
  setProcess(uid: number, pid: number, procStart: string | null): void { this.s.setProcess.run(pid, procStart, uid); }
}

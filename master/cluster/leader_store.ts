import type { SqlDb } from '../store/sql_db.ts';

export interface MasterRow {
  id: string;
  url: string | null;
  host: string;
  pid: number;
  started_at: number;
  seen_at: number;
}

export interface LeaseRow { holder: string | null; epoch: number; expires_at: number; now: number }

/**
 * The leader lease and the roll of masters, in the shared database. Every time is the database's
 * own clock (`db.sql.nowMs`), so masters with skewed clocks agree on when a lease has expired.
 *
 * The lease is one row. Taking it over bumps the epoch; renewing it keeps the epoch. A write only the
 * leader may make runs in a transaction that first reads the row with FOR SHARE (`holds`): a takeover
 * waits for that transaction to end, and a master whose epoch is no longer current finds out there.
 */
export class LeaderStore {
  constructor(private readonly db: SqlDb) {}

  /**
   * Takes the lease when it is free or expired (a new epoch), or renews it while `me` holds it with
   * `epoch` (same epoch). The epoch now held, or null when another master holds a live lease.
   */
  async acquire(me: string, epoch: number | null, ttlMs: number): Promise<number | null> {
    const now = this.db.sql.nowMs;
    const row = await this.db.get<{ epoch: number }>(
      `UPDATE leader_lease
          SET epoch = CASE WHEN holder = @me AND epoch = @epoch AND expires_at > ${now} THEN epoch ELSE epoch + 1 END,
              holder = @me, expires_at = ${now} + @ttl
        WHERE id = 1 AND ((holder = @me AND epoch = @epoch AND expires_at > ${now}) OR expires_at <= ${now} OR holder IS NULL)
        RETURNING epoch`,
      { me, epoch: epoch ?? -1, ttl: Math.round(ttlMs) },
    );
    return row ? row.epoch : null;
  }

  /** Takes the lease whoever holds it (a new epoch): only for a database one master can use. */
  async takeOver(me: string): Promise<void> {
    await this.db.run(`UPDATE leader_lease SET holder = ?, epoch = epoch + 1, expires_at = 0 WHERE id = 1`, [me]);
  }

  /** Gives the lease up at once (a clean stop): a standby need not wait for it to expire. */
  async release(me: string, epoch: number): Promise<void> {
    await this.db.run(`UPDATE leader_lease SET expires_at = 0 WHERE id = 1 AND holder = ? AND epoch = ?`, [me, epoch]);
  }

  /** Inside a transaction: whether `me` still holds a live lease at `epoch` (and keeps it so until commit). */
  async holds(me: string, epoch: number): Promise<boolean> {
    const row = await this.db.get<{ epoch: number }>(
      `SELECT epoch FROM leader_lease WHERE id = 1 AND holder = ? AND epoch = ? AND expires_at > ${this.db.sql.nowMs} ${this.db.sql.forShare}`,
      [me, epoch],
    );
    return row !== undefined;
  }

  async lease(): Promise<LeaseRow> {
    return (await this.db.get<LeaseRow>(`SELECT holder, epoch, expires_at, ${this.db.sql.nowMs} AS now FROM leader_lease WHERE id = 1`))!;
  }

  /**
   * This master is alive (every master, leader or not, says so on each lease tick); masters not
   * seen for `forgetAfterMs` are deleted here, on the tick, not on the requests that list them.
   */
  async seen(m: Omit<MasterRow, 'seen_at'>, forgetAfterMs: number): Promise<void> {
    await this.db.run(`DELETE FROM masters WHERE seen_at < ${this.db.sql.nowMs} - ?`, [Math.round(forgetAfterMs)]);
    await this.db.run(
      `INSERT INTO masters (id, url, host, pid, started_at, seen_at) VALUES (@id, @url, @host, @pid, @started_at, ${this.db.sql.nowMs})
       ON CONFLICT (id) DO UPDATE SET url = excluded.url, seen_at = excluded.seen_at`,
      m,
    );
  }

  /** Masters seen within `withinMs`, in the order they started. */
  masters(withinMs: number): Promise<MasterRow[]> {
    return this.db.all<MasterRow>(`SELECT * FROM masters WHERE seen_at >= ${this.db.sql.nowMs} - ? ORDER BY started_at`, [Math.round(withinMs)]);
  }

  async forget(id: string): Promise<void> {
    await this.db.run(`DELETE FROM masters WHERE id = ?`, [id]);
  }
}

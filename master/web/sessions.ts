import { createHash, randomBytes } from 'node:crypto';
import type { SqlDb } from '../store/sql_db.ts';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export const SESSION_COOKIE = 'sp_session';
const IDLE_MS = 12 * 3600_000;
const MAX_AGE_MS = 7 * 24 * 3600_000;

export interface Session {
  userId: number;
  csrf: string;
  tokenHash: string;
}

/**
 * Browser sessions kept in the database (they survive a master restart, can be revoked, and a user
 * lands on any master with the same cookie): the cookie carries a random token, the database only
 * its hash. Each session has its own CSRF token.
 */
export class SessionStore {
  constructor(private readonly db: SqlDb) {}

  async create(userId: number): Promise<{ token: string; session: Session }> {
    const token = randomBytes(32).toString('base64url');
    const csrf = randomBytes(24).toString('base64url');
    const now = Date.now();
    await this.db.run(`INSERT INTO sessions (token_hash, user_id, csrf, created_at, seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
      [sha256(token), userId, csrf, now, now, now + MAX_AGE_MS]);
    await this.db.run(`DELETE FROM sessions WHERE expires_at < ? OR seen_at < ?`, [now, now - IDLE_MS]);
    return { token, session: { userId, csrf, tokenHash: sha256(token) } };
  }

  async get(token: string): Promise<Session | null> {
    const row = await this.db.get<{ user_id: number; csrf: string; token_hash: string; seen_at: number; expires_at: number }>(
      `SELECT user_id, csrf, token_hash, seen_at, expires_at FROM sessions WHERE token_hash = ?`, [sha256(token)]);
    const now = Date.now();
    if (!row || row.expires_at < now || row.seen_at < now - IDLE_MS) return null;
    if (now - row.seen_at > 60_000) await this.db.run(`UPDATE sessions SET seen_at = ? WHERE token_hash = ?`, [now, row.token_hash]);
    return { userId: row.user_id, csrf: row.csrf, tokenHash: row.token_hash };
  }

  async destroy(tokenHash: string): Promise<void> { await this.db.run(`DELETE FROM sessions WHERE token_hash = ?`, [tokenHash]); }

  /** After a password change: every other session of the user ends. */
  async destroyOthers(userId: number, keepTokenHash: string): Promise<void> {
    await this.db.run(`DELETE FROM sessions WHERE user_id = ? AND token_hash <> ?`, [userId, keepTokenHash]);
  }

  /** After an admin resets a user's password: every session of that user ends. Returns how many. */
  destroyAll(userId: number): Promise<number> { return this.db.run(`DELETE FROM sessions WHERE user_id = ?`, [userId]); }
}

/**
 * Login attempts per client and per username, in the database (every master shares one limit): a
 * few tries, then a growing wait. An attempt is counted when it starts, before the (slow,
 * asynchronous) password check, so guesses sent in parallel — to one master or to several — meet
 * the same budget as guesses sent one by one; an attempt refused for waiting counts too (a guess
 * is a guess). A successful login clears its keys.
 *
 * The reservation is ONE statement (an upsert over the attempt's keys) that both counts the try
 * and records the wait it met, computed from the row as it was before: concurrent upserts of one
 * key are serialised by the row (SQLite: the statement; PostgreSQL: the row lock, READ COMMITTED
 * re-reading the newest row), so each attempt sees a distinct count and only the first free ones
 * meet no wait.
 */
export class LoginLimiter {
  private attemptsSincePrune = 0;

  /**
   * A username gets a few free tries; a client address more, since many people may share one
   * (an office behind NAT) and one of them mistyping must not lock the others out.
   */
  constructor(private readonly db: SqlDb, private readonly freeTries = 5, private readonly freeTriesPerAddress = 30, private readonly windowMs = 15 * 60_000) {}

  /**
   * Milliseconds to wait before another try is allowed (0 = go ahead), and whether any of the keys
   * has failures on record (a success then clears them; with none, it writes nothing). Counts nothing.
   */
  async wait(keys: string[]): Promise<{ waitMs: number; failing: boolean }> {
    const now = Date.now();
    const list = unique(keys);
    if (!list.length) return { waitMs: 0, failing: false };
    const row = await this.db.get<{ until_at: number | null; n: number }>(
      `SELECT MAX(CASE WHEN last_at >= ? THEN until_at END) AS until_at, COUNT(*) AS n FROM login_failures WHERE key IN (${list.map(() => '?').join(', ')})`,
      [now - this.windowMs, ...list]);
    return { waitMs: Math.max(0, (row?.until_at ?? 0) - now), failing: Number(row?.n ?? 0) > 0 };
  }

  /**
   * Counts one attempt against every key, before its password is checked. Returns 0 when the
   * attempt may go ahead, else the milliseconds to wait (the attempt is refused, and still counted).
   */
  async attempt(keys: string[]): Promise<number> {
    const now = Date.now();
    // One order for every statement: two attempts lock their shared keys in the same order.
    const list = unique(keys).sort();
    if (!list.length) return 0;
    const p: Record<string, number | string> = { now, since: now - this.windowMs, window: this.windowMs, freeIp: this.freeTriesPerAddress, freeUser: this.freeTries };
    const values = list.map((k, i) => {
      p[`k${i}`] = k;
      const first = this.backoff(1, this.free(k));
      p[`u${i}`] = first > 0 ? now + first : 0;
      return `(@k${i}, 1, @u${i}, @now, 0)`;
    });
    const count = `(CASE WHEN login_failures.last_at >= CAST(@since AS BIGINT) THEN login_failures.count + 1 ELSE 1 END)`;
    const free = `(CASE WHEN substr(login_failures.key, 1, 3) = 'ip:' THEN CAST(@freeIp AS BIGINT) ELSE CAST(@freeUser AS BIGINT) END)`;
    // The free tries are used up by the attempt that reaches them: the next one waits 2 s, then 4 s, …
    const backoff = `(CASE WHEN ${count} >= ${free} THEN ${this.db.sql.least('CAST(@window AS BIGINT)', `1000 * (CAST(1 AS BIGINT) << CAST(${this.db.sql.least('30', `${count} - ${free} + 1`)} AS INTEGER))`)} ELSE 0 END)`;
    // Every SET expression reads the row as it was before this attempt. until_at moves only with a
    // backoff: attempts reach the database in another order than their clocks were read, and a free
    // try must not make a later one (with an earlier clock) wait.
    const rows = await this.db.all<{ wait_ms: number }>(
      `INSERT INTO login_failures (key, count, until_at, last_at, wait_ms) VALUES ${values.join(', ')}
       ON CONFLICT (key) DO UPDATE SET
         count = ${count},
         until_at = CASE WHEN ${backoff} > 0 THEN ${this.db.sql.greatest('login_failures.until_at', `CAST(@now AS BIGINT) + ${backoff}`)} ELSE login_failures.until_at END,
         last_at = CAST(@now AS BIGINT),
         wait_ms = CASE WHEN login_failures.last_at >= CAST(@since AS BIGINT) THEN ${this.db.sql.greatest('0', 'login_failures.until_at - CAST(@now AS BIGINT)')} ELSE 0 END
       RETURNING wait_ms`, p);
    if (++this.attemptsSincePrune >= 100) {
      this.attemptsSincePrune = 0;
      await this.db.run(`DELETE FROM login_failures WHERE last_at < ?`, [now - this.windowMs]);
    }
    return Math.max(0, ...rows.map((r) => Number(r.wait_ms)));
  }

  async succeed(keys: string[]): Promise<void> {
    const list = unique(keys);
    if (list.length) await this.db.run(`DELETE FROM login_failures WHERE key IN (${list.map(() => '?').join(', ')})`, list);
  }

  private free(key: string): number { return key.startsWith('ip:') ? this.freeTriesPerAddress : this.freeTries; }

  private backoff(count: number, free: number): number {
    return count >= free ? Math.min(this.windowMs, 1000 * 2 ** Math.min(30, count - free + 1)) : 0;
  }
}

const unique = (keys: string[]) => [...new Set(keys)];

/** The keys a failed login counts against: the client's address and the username. */
export function loginKeys(clientIp: string, username: string): string[] {
  return [`ip:${clientIp}`, `user:${username.toLowerCase()}`];
}

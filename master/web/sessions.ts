import { createHash, randomBytes } from 'node:crypto';
import type { Db } from '../../common/sqlite.ts';

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
 * Browser sessions kept in SQLite (they survive a master restart and can be revoked): the cookie
 * carries a random token, the database only its hash. Each session has its own CSRF token.
 */
export class SessionStore {
  private readonly s;

  constructor(db: Db) {
    this.s = {
      insert: db.prepare(`INSERT INTO sessions (token_hash, user_id, csrf, created_at, seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`),
      get: db.prepare(`SELECT user_id, csrf, token_hash, seen_at, expires_at FROM sessions WHERE token_hash = ?`),
      touch: db.prepare(`UPDATE sessions SET seen_at = ? WHERE token_hash = ?`),
      remove: db.prepare(`DELETE FROM sessions WHERE token_hash = ?`),
      removeUser: db.prepare(`DELETE FROM sessions WHERE user_id = ? AND token_hash != ?`),
      removeAll: db.prepare(`DELETE FROM sessions WHERE user_id = ?`),
      prune: db.prepare(`DELETE FROM sessions WHERE expires_at < ? OR seen_at < ?`),
    };
  }

  create(userId: number): { token: string; session: Session } {
    const token = randomBytes(32).toString('base64url');
    const csrf = randomBytes(24).toString('base64url');
    const now = Date.now();
    this.s.insert.run(sha256(token), userId, csrf, now, now, now + MAX_AGE_MS);
    this.s.prune.run(now, now - IDLE_MS);
    return { token, session: { userId, csrf, tokenHash: sha256(token) } };
  }

  get(token: string): Session | null {
    const row = this.s.get.get(sha256(token)) as { user_id: number; csrf: string; token_hash: string; seen_at: number; expires_at: number } | undefined;
    const now = Date.now();
    if (!row || row.expires_at < now || row.seen_at < now - IDLE_MS) return null;
    if (now - row.seen_at > 60_000) this.s.touch.run(now, row.token_hash);
    return { userId: row.user_id, csrf: row.csrf, tokenHash: row.token_hash };
  }

  destroy(tokenHash: string): void { this.s.remove.run(tokenHash); }

  /** After a password change: every other session of the user ends. */
  destroyOthers(userId: number, keepTokenHash: string): void { this.s.removeUser.run(userId, keepTokenHash); }

  /** After an admin resets a user's password: every session of that user ends. Returns how many. */
  destroyAll(userId: number): number { return this.s.removeAll.run(userId).changes; }
}

/**
 * Login attempts per client and per username: a few tries, then a growing wait. An attempt is
 * counted when it starts, before the (slow, asynchronous) password check, so guesses sent in
 * parallel meet the same budget as guesses sent one by one; an attempt refused for waiting counts
 * too (a guess is a guess). A successful login clears its keys.
 */
export class LoginLimiter {
  private readonly attempts = new Map<string, { count: number; until: number; last: number }>();

  /**
   * A username gets a few free tries; a client address more, since many people may share one
   * (an office behind NAT) and one of them mistyping must not lock the others out.
   */
  constructor(private readonly freeTries = 5, private readonly freeTriesPerAddress = 30, private readonly windowMs = 15 * 60_000) {}

  /** Milliseconds to wait before another try is allowed (0 = go ahead); counts nothing. */
  wait(keys: string[]): number {
    const now = Date.now();
    return Math.max(0, ...keys.map((k) => {
      const f = this.attempts.get(k);
      if (!f || now - f.last > this.windowMs) return 0;
      return Math.max(0, f.until - now);
    }));
  }

  /**
   * Counts one attempt against every key, before its password is checked. Returns 0 when the
   * attempt may go ahead, else the milliseconds to wait (the attempt is refused, and still counted).
   */
  attempt(keys: string[]): number {
    const wait = this.wait(keys);
    const now = Date.now();
    for (const k of keys) {
      const f = this.attempts.get(k);
      const count = f && now - f.last <= this.windowMs ? f.count + 1 : 1;
      const free = k.startsWith('ip:') ? this.freeTriesPerAddress : this.freeTries;
      // The free tries are used up by the attempt that reaches them: the next one waits 2 s, then 4 s, …
      const backoff = count >= free ? Math.min(this.windowMs, 1000 * 2 ** Math.min(30, count - free + 1)) : 0;
      this.attempts.set(k, { count, until: Math.max(f?.until ?? 0, now + backoff), last: now });
    }
    if (this.attempts.size > 10_000) {
      for (const [k, f] of this.attempts) if (now - f.last > this.windowMs) this.attempts.delete(k);
    }
    return wait;
  }

  succeed(keys: string[]): void {
    for (const k of keys) this.attempts.delete(k);
  }
}

/** The keys a failed login counts against: the client's address and the username. */
export function loginKeys(clientIp: string, username: string): string[] {
  return [`ip:${clientIp}`, `user:${username.toLowerCase()}`];
}

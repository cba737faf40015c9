import bcrypt from 'bcrypt';
import { createHash, randomBytes } from 'node:crypto';
import { isUniqueViolation, type SqlDb } from '../store/sql_db.ts';

export type Role = 'admin' | 'operator' | 'viewer';
export const ROLES: readonly Role[] = ['admin', 'operator', 'viewer'];

export interface User {
  id: number;
  username: string;
  role: Role;
  created_at: number;
}

/** The default cost (--bcrypt-rounds); a check costs what the stored hash's own cost says. */
export const BCRYPT_ROUNDS = 12;
// bcrypt costs ~200 ms a check by design; API clients (scrapyd-deploy, ScrapydWeb) send basic
// auth on every call, so a successful check is remembered briefly, keyed by a hash of the pair.
const VERIFIED_TTL_MS = 5 * 60_000;

/** Per cost: an unknown name is checked against a hash as costly as a real one. */
const dummyHashes = new Map<number, Promise<string>>();

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export class UserProblem extends Error {}

export function passwordProblem(password: string): string | null {
  if (password.length < 8) return 'a password needs at least 8 characters';
  if (password.length > 72) return 'a password can have at most 72 bytes (bcrypt ignores the rest)';
  return null;
}

/**
 * Users and their API tokens. Every method reads the database (no copy of a user is kept), so a
 * change made through one master holds on every master at once; the only memory is the brief
 * record of a verified name and password, which is dropped as soon as the stored hash differs.
 */
export class UserStore {
  private readonly verified = new Map<string, { userId: number; hash: string; until: number }>();
  private readonly inFlight = new Map<string, Promise<User | null>>();

  private readonly rounds: number;

  constructor(private readonly db: SqlDb, opts: { bcryptRounds?: number } = {}) {
    this.rounds = opts.bcryptRounds ?? BCRYPT_ROUNDS;
  }

  async count(): Promise<number> { return (await this.db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM users`))!.n; }
  all(): Promise<User[]> { return this.db.all<User>(`SELECT id, username, role, created_at FROM users ORDER BY username`); }
  get(id: number): Promise<User | undefined> { return this.db.get<User>(`SELECT id, username, role, created_at FROM users WHERE id = ?`, [id]); }

  private byName(username: string): Promise<(User & { password_hash: string }) | undefined> {
    return this.db.get(`SELECT id, username, role, created_at, password_hash FROM users WHERE username = ?`, [username]);
  }

  async create(username: string, password: string, role: Role): Promise<User> {
    if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(username)) throw new UserProblem('a username has 1 to 64 letters, digits or _ . @ -');
    const problem = passwordProblem(password);
    if (problem) throw new UserProblem(problem);
    if (!ROLES.includes(role)) throw new UserProblem(`role must be one of ${ROLES.join(', ')}`);
    if (await this.byName(username)) throw new UserProblem(`user '${username}' already exists`);
    const hash = await bcrypt.hash(password, this.rounds);
    let id: number;
    try {
      id = await this.db.insert(`INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?)`, [username, hash, role, Date.now()]);
    } catch (e) {
      // Created meanwhile (by a parallel request, or on another master).
      if (isUniqueViolation(e)) throw new UserProblem(`user '${username}' already exists`);
      throw e;
    }
    return (await this.get(id))!;
  }

  async setPassword(id: number, password: string): Promise<void> {
    const problem = passwordProblem(password);
    if (problem) throw new UserProblem(problem);
    await this.db.run(`UPDATE users SET password_hash = ? WHERE id = ?`, [await bcrypt.hash(password, this.rounds), id]);
    this.verified.clear();
  }

  async setRole(id: number, role: Role): Promise<void> {
    if (!ROLES.includes(role)) throw new UserProblem(`role must be one of ${ROLES.join(', ')}`);
    await this.db.run(`UPDATE users SET role = ? WHERE id = ?`, [role, id]);
  }

  async remove(id: number): Promise<void> {
    await this.db.run(`DELETE FROM users WHERE id = ?`, [id]);
    this.verified.clear();
  }

  /**
   * The user, when this very name and password were verified a moment ago (no bcrypt: not a
   * guess) and the stored password is still the one verified (it may have changed on another master).
   */
  async recentlyVerified(username: string, password: string): Promise<User | null> {
    const key = sha256(`${username}\0${password}`);
    const hit = this.verified.get(key);
    if (!hit || hit.until <= Date.now()) return null;
    const row = await this.db.get<User & { password_hash: string }>(`SELECT id, username, role, created_at, password_hash FROM users WHERE id = ?`, [hit.userId]);
    if (!row || row.password_hash !== hit.hash) {
      this.verified.delete(key);
      return null;
    }
    return { id: row.id, username: row.username, role: row.role, created_at: row.created_at };
  }

  /** The check of this very name and password already under way, if one is (parallel API calls share it). */
  verifying(username: string, password: string): Promise<User | null> | undefined {
    return this.inFlight.get(sha256(`${username}\0${password}`));
  }

  /** The user whose name and password these are, or null. */
  async verify(username: string, password: string): Promise<User | null> {
    const key = sha256(`${username}\0${password}`);
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    const check = this.check(key, username, password).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, check);
    return check;
  }

  private async check(key: string, username: string, password: string): Promise<User | null> {
    const known = await this.recentlyVerified(username, password);
    if (known) return known;
    const row = await this.byName(username);
    // Compare against a dummy hash for unknown users so timing does not reveal which names exist.
    let dummy = dummyHashes.get(this.rounds);
    if (!dummy) dummyHashes.set(this.rounds, dummy = bcrypt.hash('not a password', this.rounds));
    const ok = await bcrypt.compare(password, row?.password_hash ?? await dummy);
    if (!row || !ok) return null;
    this.verified.set(key, { userId: row.id, hash: row.password_hash, until: Date.now() + VERIFIED_TTL_MS });
    return { id: row.id, username: row.username, role: row.role, created_at: row.created_at };
  }

  /** A new API token for the user; the token is returned once and only its hash is kept. */
  async createToken(userId: number, name: string): Promise<string> {
    if (!/^.{1,100}$/.test(name)) throw new UserProblem('a token name has 1 to 100 characters');
    const token = 'spt_' + randomBytes(24).toString('base64url');
    await this.db.insert(`INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?)`, [userId, name, sha256(token), Date.now()]);
    return token;
  }

  async userForToken(token: string): Promise<User | null> {
    const row = await this.db.get<User & { token_id: number }>(
      `SELECT u.id, u.username, u.role, u.created_at, t.id AS token_id FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?`, [sha256(token)]);
    if (!row) return null;
    await this.db.run(`UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, [Date.now(), row.token_id]);
    return { id: row.id, username: row.username, role: row.role, created_at: row.created_at };
  }

  tokens(userId: number): Promise<Array<{ id: number; name: string; created_at: number; last_used_at: number | null }>> {
    return this.db.all(`SELECT id, name, created_at, last_used_at FROM api_tokens WHERE user_id = ? ORDER BY id`, [userId]);
  }

  async removeToken(userId: number, tokenId: number): Promise<boolean> {
    return (await this.db.run(`DELETE FROM api_tokens WHERE id = ? AND user_id = ?`, [tokenId, userId])) > 0;
  }
}

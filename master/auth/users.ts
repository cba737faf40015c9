import bcrypt from 'bcrypt';
import { createHash, randomBytes } from 'node:crypto';
import type { Db } from '../../common/sqlite.ts';

export type Role = 'admin' | 'operator' | 'viewer';
export const ROLES: readonly Role[] = ['admin', 'operator', 'viewer'];

export interface User {
  id: number;
  username: string;
  role: Role;
  created_at: number;
}

const BCRYPT_ROUNDS = 12;
// bcrypt costs ~200 ms a check by design; API clients (scrapyd-deploy, ScrapydWeb) send basic
// auth on every call, so a successful check is remembered briefly, keyed by a hash of the pair.
const VERIFIED_TTL_MS = 5 * 60_000;

let dummyHash: string | null = null;

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export class UserProblem extends Error {}

export function passwordProblem(password: string): string | null {
  if (password.length < 8) return 'a password needs at least 8 characters';
  if (password.length > 72) return 'a password can have at most 72 bytes (bcrypt ignores the rest)';
  return null;
}

export class UserStore {
  private readonly s;
  private readonly verified = new Map<string, { userId: number; until: number }>();
  private readonly inFlight = new Map<string, Promise<User | null>>();

  constructor(db: Db) {
    this.s = {
      count: db.prepare(`SELECT COUNT(*) AS n FROM users`),
      byName: db.prepare(`SELECT * FROM users WHERE username = ?`),
      byId: db.prepare(`SELECT id, username, role, created_at FROM users WHERE id = ?`),
      all: db.prepare(`SELECT id, username, role, created_at FROM users ORDER BY username`),
      insert: db.prepare(`INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?)`),
      setPassword: db.prepare(`UPDATE users SET password_hash = ? WHERE id = ?`),
      setRole: db.prepare(`UPDATE users SET role = ? WHERE id = ?`),
      remove: db.prepare(`DELETE FROM users WHERE id = ?`),
      tokenInsert: db.prepare(`INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?)`),
      tokenUser: db.prepare(`SELECT u.id, u.username, u.role, u.created_at, t.id AS token_id FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?`),
      tokenUsed: db.prepare(`UPDATE api_tokens SET last_used_at = ? WHERE id = ?`),
      tokens: db.prepare(`SELECT id, name, created_at, last_used_at FROM api_tokens WHERE user_id = ? ORDER BY id`),
      tokenRemove: db.prepare(`DELETE FROM api_tokens WHERE id = ? AND user_id = ?`),
    };
  }

  count(): number { return (this.s.count.get() as { n: number }).n; }
  all(): User[] { return this.s.all.all() as User[]; }
  get(id: number): User | undefined { return this.s.byId.get(id) as User | undefined; }

  async create(username: string, password: string, role: Role): Promise<User> {
    if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(username)) throw new UserProblem('a username has 1 to 64 letters, digits or _ . @ -');
    const problem = passwordProblem(password);
    if (problem) throw new UserProblem(problem);
    if (!ROLES.includes(role)) throw new UserProblem(`role must be one of ${ROLES.join(', ')}`);
    if (this.s.byName.get(username)) throw new UserProblem(`user '${username}' already exists`);
    const hash = await bcrypt.hash(password, BCRYPT_ROUNDS);
    return this.get(Number(this.s.insert.run(username, hash, role, Date.now()).lastInsertRowid))!;
  }

  async setPassword(id: number, password: string): Promise<void> {
    const problem = passwordProblem(password);
    if (problem) throw new UserProblem(problem);
    this.s.setPassword.run(await bcrypt.hash(password, BCRYPT_ROUNDS), id);
    this.verified.clear();
  }

  setRole(id: number, role: Role): void {
    if (!ROLES.includes(role)) throw new UserProblem(`role must be one of ${ROLES.join(', ')}`);
    this.s.setRole.run(role, id);
  }

  remove(id: number): void {
    this.s.remove.run(id);
    this.verified.clear();
  }

  /** The user, when this very name and password were verified a moment ago (no bcrypt: not a guess). */
  recentlyVerified(username: string, password: string): User | null {
    const hit = this.verified.get(sha256(`${username}\0${password}`));
    return hit && hit.until > Date.now() ? this.get(hit.userId) ?? null : null;
  }

  /** The check of this very name and password already under way, if one is (parallel API calls share it). */
  verifying(username: string, password: string): Promise<User | null> | undefined {
    return this.inFlight.get(sha256(`${username}\0${password}`));
  }

  /** The user whose name and password these are, or null. */
  async verify(username: string, password: string): Promise<User | null> {
    const key = sha256(`${username}\0${password}`);
    const known = this.recentlyVerified(username, password);
    if (known) return known;
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    const check = this.check(key, username, password).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, check);
    return check;
  }

  private async check(key: string, username: string, password: string): Promise<User | null> {
    const row = this.s.byName.get(username) as (User & { password_hash: string }) | undefined;
    // Compare against a dummy hash for unknown users so timing does not reveal which names exist.
    dummyHash ??= await bcrypt.hash('not a password', BCRYPT_ROUNDS);
    const ok = await bcrypt.compare(password, row?.password_hash ?? dummyHash);
    if (!row || !ok) return null;
    this.verified.set(key, { userId: row.id, until: Date.now() + VERIFIED_TTL_MS });
    return this.get(row.id)!;
  }

  /** A new API token for the user; the token is returned once and only its hash is kept. */
  createToken(userId: number, name: string): string {
    if (!/^.{1,100}$/.test(name)) throw new UserProblem('a token name has 1 to 100 characters');
    const token = 'spt_' + randomBytes(24).toString('base64url');
    this.s.tokenInsert.run(userId, name, sha256(token), Date.now());
    return token;
  }

  userForToken(token: string): User | null {
    const row = this.s.tokenUser.get(sha256(token)) as (User & { token_id: number }) | undefined;
    if (!row) return null;
    this.s.tokenUsed.run(Date.now(), row.token_id);
    return { id: row.id, username: row.username, role: row.role, created_at: row.created_at };
  }

  tokens(userId: number): Array<{ id: number; name: string; created_at: number; last_used_at: number | null }> {
    return this.s.tokens.all(userId) as Array<{ id: number; name: string; created_at: number; last_used_at: number | null }>;
  }

  removeToken(userId: number, tokenId: number): boolean { return this.s.tokenRemove.run(tokenId, userId).changes > 0; }
}

// One password check for every way in (the login page, HTTP basic auth on the API and on the
// Scrapyd facade), under the login limit. The attempt is counted before the slow, asynchronous
// bcrypt, so parallel guesses beyond the budget are refused at once and never evaluated. A name
// and password verified a moment ago, or being verified right now by a parallel request (a
// Scrapyd client's burst of calls), is not a new guess and is not counted. The limit lives in the
// database (every master shares it); parallel checks of one name and password in this process are
// joined synchronously, before the first await, so a burst is one check, not one attempt per call.
import { createHash } from 'node:crypto';
import type { User, UserStore } from './users.ts';
import { loginKeys, type LoginLimiter } from '../web/sessions.ts';

export type LoginResult = { user: User } | { user: null; waitMs: number };

/** The checks under way, per user store, by a hash of the name and password. */
const underWay = new WeakMap<UserStore, Map<string, Promise<LoginResult>>>();

export async function checkLogin(users: UserStore, limiter: LoginLimiter, clientIp: string, username: string, password: string): Promise<LoginResult> {
  const checks = underWay.get(users) ?? new Map<string, Promise<LoginResult>>();
  underWay.set(users, checks);
  const pair = createHash('sha256').update(`${username}\0${password}`).digest('hex');
  const same = checks.get(pair);
  if (same) {
    // The same name and password, being checked right now: its outcome, counted once.
    const result = await same;
    if (result.user) await limiter.succeed(loginKeys(clientIp, username));
    return result;
  }
  const check = evaluate(users, limiter, clientIp, username, password).finally(() => checks.delete(pair));
  checks.set(pair, check);
  return check;
}

async function evaluate(users: UserStore, limiter: LoginLimiter, clientIp: string, username: string, password: string): Promise<LoginResult> {
  const keys = loginKeys(clientIp, username);
  // While the limit holds, even the right password waits (and the try counts): that is what stops guessing.
  const limit = await limiter.wait(keys);
  if (limit.waitMs > 0) return { user: null, waitMs: await limiter.attempt(keys) };
  const known = await users.recentlyVerified(username, password);
  const shared = known ? null : users.verifying(username, password);
  if (known || shared) {
    const user = known ?? (await shared);
    if (!user) return { user: null, waitMs: 0 }; // the same wrong guess, counted once by the request checking it
    // A client calling again and again with the right password writes nothing (the hot path).
    if (limit.failing) await limiter.succeed(keys);
    return { user };
  }
  const waitMs = await limiter.attempt(keys);
  if (waitMs > 0) return { user: null, waitMs };
  const user = username && password ? await users.verify(username, password) : null;
  if (!user) return { user: null, waitMs: 0 };
  await limiter.succeed(keys);
  return { user };
}

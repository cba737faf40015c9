// One password check for every way in (the login page, HTTP basic auth on the API and on the
// Scrapyd facade), under the login limit. The attempt is counted before the slow, asynchronous
// bcrypt, so parallel guesses beyond the budget are refused at once and never evaluated. A name
// and password verified a moment ago, or being verified right now by a parallel request (a
// Scrapyd client's burst of calls), is not a new guess and is not counted.
import type { User, UserStore } from './users.ts';
import { loginKeys, type LoginLimiter } from '../web/sessions.ts';

export type LoginResult = { user: User } | { user: null; waitMs: number };

export async function checkLogin(users: UserStore, limiter: LoginLimiter, clientIp: string, username: string, password: string): Promise<LoginResult> {
  const keys = loginKeys(clientIp, username);
  // While the limit holds, even the right password waits (and the try counts): that is what stops guessing.
  if (limiter.wait(keys) > 0) return { user: null, waitMs: limiter.attempt(keys) };
  const known = users.recentlyVerified(username, password);
  const shared = known ? null : users.verifying(username, password);
  if (known || shared) {
    const user = known ?? (await shared);
    if (!user) return { user: null, waitMs: 0 }; // the same wrong guess, counted once by the request checking it
    limiter.succeed(keys);
    return { user };
  }
  const waitMs = limiter.attempt(keys);
  if (waitMs > 0) return { user: null, waitMs };
  const user = username && password ? await users.verify(username, password) : null;
  if (!user) return { user: null, waitMs: 0 };
  limiter.succeed(keys);
  return { user };
}

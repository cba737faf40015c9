import type { Context, Next } from 'koa';
import { timingSafeEqual } from 'node:crypto';
import type { Role, User, UserStore } from '../auth/users.ts';
import { SESSION_COOKIE, type LoginLimiter, type Session, type SessionStore } from '../web/sessions.ts';
import { checkLogin } from '../auth/login_check.ts';
import { HttpError } from './input.ts';

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface AuthState {
  user: User | null;
  /** the browser session, when the user came by cookie */
  session: Session | null;
  /** true when the caller presented the cluster token (a slave announcing itself) */
  cluster: boolean;
}

export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

/**
 * Resolves who is calling: HTTP basic auth of a user (what scrapyd-deploy sends from scrapy.cfg),
 * a Bearer API token, the cluster token, or a browser session cookie. A session only counts for a
 * state-changing request that proves it came from our own pages (the X-CSRF-Token header here;
 * web forms check their _csrf field themselves). Never rejects by itself: routes say what they need.
 */
export function identify(users: UserStore, sessions: SessionStore, clusterToken: string, limiter: LoginLimiter) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const state: AuthState = { user: null, session: null, cluster: false };
    const [scheme, value = ''] = ctx.get('Authorization').split(' ', 2);
    if (/^bearer$/i.test(scheme ?? '')) {
      const token = value.trim();
      if (safeEqual(token, clusterToken)) state.cluster = true;
      else state.user = await users.userForToken(token);
    } else if (/^basic$/i.test(scheme ?? '')) {
      const decoded = Buffer.from(value.trim(), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) {
        // Basic auth is a login too: guessing passwords through the API meets the same limit.
        const ip = typeof ctx.state.clientIp === 'string' ? ctx.state.clientIp : ctx.request.socket.remoteAddress ?? 'unknown';
        const result = await checkLogin(users, limiter, ip, decoded.slice(0, colon), decoded.slice(colon + 1));
        if (!result.user && result.waitMs > 0) {
          const secs = Math.max(1, Math.ceil(result.waitMs / 1000));
          ctx.status = 429;
          ctx.set('Retry-After', String(secs));
          ctx.body = { error: `too many failed logins: try again in ${secs} s` };
          return;
        }
        state.user = result.user;
      }
    } else {
      const cookie = ctx.cookies.get(SESSION_COOKIE);
      const session = cookie ? await sessions.get(cookie) : null;
      if (session) {
        state.session = session;
        const header = ctx.get('X-CSRF-Token');
        const isForm = /^(application\/x-www-form-urlencoded|multipart\/form-data)/i.test(ctx.get('Content-Type'));
        // Forms are checked by the page routes (their _csrf field); everything else needs the header.
        if (SAFE_METHODS.has(ctx.method) || (header && safeEqual(header, session.csrf)) || (isForm && !ctx.path.startsWith('/api/') && !ctx.path.endsWith('.json'))) {
          state.user = (await users.get(session.userId)) ?? null;
        } else {
          ctx.state.auth = state;
          ctx.status = 403;
          ctx.body = { error: 'missing or wrong CSRF token (send the X-CSRF-Token header of the page)' };
          return;
        }
      }
    }
    ctx.state.auth = state;
    await next();
  };
}

export function authOf(ctx: Context): AuthState {
  return ctx.state.auth as AuthState;
}

export function hasRole(user: User | null, role: Role): boolean {
  return !!user && RANK[user.role] >= RANK[role];
}

/** The user, who must hold at least `role`; 401 without credentials, 403 with too small a role. */
export function requireRole(ctx: Context, role: Role): User {
  const { user } = authOf(ctx);
  if (!user) {
    ctx.set('WWW-Authenticate', 'Basic realm="spiderplane"');
    throw new HttpError(401, 'authentication required: HTTP basic auth of a spiderplane user, or Authorization: Bearer <API token>');
  }
  if (RANK[user.role] < RANK[role]) throw new HttpError(403, `this needs the ${role} role; '${user.username}' is ${user.role}`);
  return user;
}

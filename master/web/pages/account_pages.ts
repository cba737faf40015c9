import { randomBytes } from 'node:crypto';
import type { Context } from 'koa';
import { BodyRejected, LOGIN_LIMITS, readParams, type Params } from '../../../common/http/request_params.ts';
import { ROLES, UserProblem, type Role } from '../../auth/users.ts';
import { authOf, safeEqual } from '../../http/auth.ts';
import { SESSION_COOKIE } from '../sessions.ts';
import { checkLogin } from '../../auth/login_check.ts';
import { smtpView } from '../../alerts/mailer.ts';
import { action, baseQuery, page, pageOf, type PageContext } from '../page_kit.ts';
import { prefixOf, redirect, render } from '../render.ts';

const LOGIN_CSRF_COOKIE = 'sp_login_csrf';

function safeNext(next: string | undefined): string {
  // Only paths inside the app: never an absolute or protocol-relative URL.
  return next && next.startsWith('/') && !next.startsWith('//') && !next.includes('\\') ? next : '/';
}

/** A row id from the URL, or null when it is not one (never reaches SQL: PostgreSQL refuses 'NaN'). */
function idParam(v: string | undefined): number | null {
  return v !== undefined && /^\d{1,15}$/.test(v) ? Number(v) : null;
}

function clientIp(ctx: Context): string {
  return typeof ctx.state.clientIp === 'string' ? ctx.state.clientIp : ctx.request.socket.remoteAddress ?? 'unknown';
}

/** Login, logout, own settings (password, API tokens) and, for admins, user management. */
export function mountAccountPages(pc: PageContext): void {
  const { m, env, router } = pc;
  const limiter = m.loginLimiter;
  const cookieOpts = (ctx: Context) => ({ httpOnly: true, sameSite: 'lax' as const, path: prefixOf(ctx) || '/', secure: ctx.state.proto === 'https', overwrite: true });

  const showLogin = (ctx: Context, vars: { error?: string; username?: string; next?: string }, status = 200) => {
    const token = randomBytes(18).toString('base64url');
    ctx.cookies.secure = ctx.state.proto === 'https';
    ctx.cookies.set(LOGIN_CSRF_COOKIE, token, { ...cookieOpts(ctx), maxAge: 3600_000 });
    render(env, ctx, 'login.njk', { loginCsrf: token, next: safeNext(vars.next), username: vars.username ?? '', error: vars.error }, status);
  };

  router.get('/login', (ctx) => {
    if (authOf(ctx).session && authOf(ctx).user) return redirect(ctx, safeNext(ctx.query.next as string | undefined));
    showLogin(ctx, { next: ctx.query.next as string | undefined });
  });

  router.post('/login', async (ctx) => {
    let form: Params;
    try {
      form = await readParams(ctx, LOGIN_LIMITS);
    } catch (e) {
      if (!(e instanceof BodyRejected)) throw e;
      ctx.status = e.status;
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = e.message;
      return;
    }
    const username = (form.get('username') ?? '').trim();
    const password = form.get('password') ?? '';
    const next = form.get('next');
    const expected = ctx.cookies.get(LOGIN_CSRF_COOKIE);
    const token = form.get('_csrf');
    if (!expected || !token || !safeEqual(expected, token)) {
      return showLogin(ctx, { error: 'The login form expired. Please try again.', username, next }, 403);
    }
    const result = await checkLogin(m.users, limiter, clientIp(ctx), username, password);
    if (!result.user && result.waitMs > 0) {
      const secs = Math.max(1, Math.ceil(result.waitMs / 1000));
      ctx.set('Retry-After', String(secs));
      return showLogin(ctx, { error: `Too many failed attempts. Try again in ${secs} seconds.`, username, next }, 429);
    }
    const user = result.user;
    if (!user) return showLogin(ctx, { error: 'Wrong username or password.', username, next }, 401);
    const { token: sessionToken } = await m.sessions.create(user.id);
    ctx.cookies.secure = ctx.state.proto === 'https';
    ctx.cookies.set(SESSION_COOKIE, sessionToken, { ...cookieOpts(ctx), maxAge: 7 * 24 * 3600_000 });
    ctx.cookies.set(LOGIN_CSRF_COOKIE, '', { ...cookieOpts(ctx), maxAge: 0 });
    redirect(ctx, safeNext(next));
  });

  action(pc, '/logout', 'viewer', async (ctx) => {
    const { session } = authOf(ctx);
    if (session) await m.sessions.destroy(session.tokenHash);
    ctx.cookies.set(SESSION_COOKIE, '', { ...cookieOpts(ctx), maxAge: 0 });
    redirect(ctx, '/login');
  });

  const smtp = () => smtpView(m.alerts.smtp(), m.alerts.smtpSource(), m.alerts.smtpCheck());
  page(pc, '/settings', 'viewer', async (ctx, user) => {
    render(env, ctx, 'settings.njk', { tokens: await m.users.tokens(user.id), newToken: null, smtp: smtp() });
  });

  action(pc, '/settings/password', 'viewer', async (ctx, form, user) => {
    const current = form.get('current') ?? '';
    const next = form.get('password') ?? '';
    // A stolen session must not guess the password either: the same limit as the login page.
    const check = await checkLogin(m.users, limiter, clientIp(ctx), user.username, current);
    if (!check.user && check.waitMs > 0) return redirect(ctx, '/settings', { kind: 'error', text: `Too many failed attempts. Try again in ${Math.max(1, Math.ceil(check.waitMs / 1000))} seconds.` });
    if (!check.user) return redirect(ctx, '/settings', { kind: 'error', text: 'Your current password is not right.' });
    if (next !== (form.get('confirm') ?? '')) return redirect(ctx, '/settings', { kind: 'error', text: 'The new passwords do not match.' });
    try {
      await m.users.setPassword(user.id, next);
    } catch (e) {
      if (e instanceof UserProblem) return redirect(ctx, '/settings', { kind: 'error', text: e.message });
      throw e;
    }
    await m.sessions.destroyOthers(user.id, authOf(ctx).session!.tokenHash);
    redirect(ctx, '/settings', { kind: 'ok', text: 'Password changed. Your other sessions were logged out.' });
  });

  action(pc, '/settings/tokens', 'viewer', async (ctx, form, user) => {
    try {
      const token = await m.users.createToken(user.id, (form.get('name') ?? '').trim());
      render(env, ctx, 'settings.njk', { tokens: await m.users.tokens(user.id), newToken: token, smtp: smtp() });
    } catch (e) {
      if (e instanceof UserProblem) return redirect(ctx, '/settings', { kind: 'error', text: e.message });
      throw e;
    }
  });

  action(pc, '/settings/tokens/:id/delete', 'viewer', async (ctx, _form, user) => {
    const tokenId = idParam(ctx.params.id);
    const ok = tokenId !== null && (await m.users.removeToken(user.id, tokenId));
    redirect(ctx, '/settings', ok ? { kind: 'ok', text: 'Token revoked.' } : { kind: 'error', text: 'No such token.' });
  });

  page(pc, '/users', 'admin', async (ctx) => {
    const all = await m.users.all();
    const p = pageOf(ctx, all.length, 50);
    render(env, ctx, 'users.njk', { users: all.slice(p.offset, p.offset + p.limit), roles: ROLES, page: p, pageBase: baseQuery(ctx, []) });
  });

  action(pc, '/users', 'admin', async (ctx, form) => {
    try {
      const u = await m.users.create((form.get('username') ?? '').trim(), form.get('password') ?? '', (form.get('role') ?? 'viewer') as Role);
      redirect(ctx, '/users', { kind: 'ok', text: `User ${u.username} created.` });
    } catch (e) {
      if (e instanceof UserProblem) return redirect(ctx, '/users', { kind: 'error', text: e.message });
      throw e;
    }
  });

  action(pc, '/users/:id/role', 'admin', async (ctx, form, me) => {
    const id = idParam(ctx.params.id);
    if (id === null || !(await m.users.get(id))) return redirect(ctx, '/users', { kind: 'error', text: 'There is no such user.' });
    if (id === me.id) return redirect(ctx, '/users', { kind: 'error', text: 'You cannot change your own role.' });
    try {
      await m.users.setRole(id, (form.get('role') ?? '') as Role);
      redirect(ctx, '/users', { kind: 'ok', text: 'Role changed.' });
    } catch (e) {
      if (e instanceof UserProblem) return redirect(ctx, '/users', { kind: 'error', text: e.message });
      throw e;
    }
  });

  // An admin sets a new password for another user (who forgot theirs); that user's sessions end.
  action(pc, '/users/:id/password', 'admin', async (ctx, form, me) => {
    const id = idParam(ctx.params.id);
    const target = id !== null ? await m.users.get(id) : undefined;
    if (!target) return redirect(ctx, '/users', { kind: 'error', text: 'There is no such user.' });
    if (target.id === me.id) return redirect(ctx, '/users', { kind: 'error', text: 'Change your own password on the Settings page (it asks for the current one).' });
    try {
      await m.users.setPassword(target.id, form.get('password') ?? '');
    } catch (e) {
      if (e instanceof UserProblem) return redirect(ctx, '/users', { kind: 'error', text: `Password of ${target.username} not changed: ${e.message}` });
      throw e;
    }
    const ended = await m.sessions.destroyAll(target.id);
    console.log(`[spiderplane-master] ${me.username} reset the password of ${target.username}; ${ended} session(s) ended`);
    redirect(ctx, '/users', { kind: 'ok', text: `Password of ${target.username} reset; ${ended === 0 ? 'they had no open session' : `${ended} open session${ended === 1 ? ' was' : 's were'} logged out`}.` });
  });

  action(pc, '/users/:id/delete', 'admin', async (ctx, _form, me) => {
    const id = idParam(ctx.params.id);
    if (id === null) return redirect(ctx, '/users', { kind: 'error', text: 'There is no such user.' });
    if (id === me.id) return redirect(ctx, '/users', { kind: 'error', text: 'You cannot delete yourself.' });
    await m.users.remove(id);
    redirect(ctx, '/users', { kind: 'ok', text: 'User deleted.' });
  });
}

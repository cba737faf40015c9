import type Router from '@koa/router';
import type { Context } from 'koa';
import type nunjucks from 'nunjucks';
import { BodyRejected, FORM_LIMITS, readParams, type BodyLimits, type Params } from '../../common/http/request_params.ts';
import type { Role, User } from '../auth/users.ts';
import { authOf, hasRole, safeEqual } from '../http/auth.ts';
import { HttpError } from '../http/input.ts';
import type { Master } from '../master.ts';
import { redirect, render } from './render.ts';

export interface PageContext {
  m: Master;
  env: nunjucks.Environment;
  router: Router;
}

export class FormProblem extends Error {}

/** Everything a page needs that is not the request: who asked, with which role. */
function sessionUser(ctx: Context): User | null {
  const { user, session } = authOf(ctx);
  // Pages are for browser sessions only; API credentials do not open them.
  return session ? user : null;
}

function denied(pc: PageContext, ctx: Context, role: Role): boolean {
  const user = sessionUser(ctx);
  if (!user) {
    redirect(ctx, `/login?next=${encodeURIComponent(ctx.originalUrl.slice((ctx.state.prefix as string | undefined ?? '').length) || '/')}`);
    return true;
  }
  if (!hasRole(user, role)) {
    render(pc.env, ctx, 'error.njk', { title: 'Not allowed', message: `This needs the ${role} role; you are ${user.role}.` }, 403);
    return true;
  }
  return false;
}

/** A GET page for a logged-in user with at least `role`; everyone else goes to the login page. */
export function page(pc: PageContext, path: string, role: Role, handler: (ctx: Context, user: User) => Promise<void> | void): void {
  pc.router.get(path, async (ctx) => {
    if (denied(pc, ctx, role)) return;
    try {
      await handler(ctx, sessionUser(ctx)!);
    } catch (e) {
      if (e instanceof HttpError && e.status === 404) {
        render(pc.env, ctx, 'error.njk', { title: 'Not found', message: e.message }, 404);
        return;
      }
      throw e;
    }
  });
}

/**
 * A form POST: the session must hold `role` and the form must carry the session's CSRF token.
 * The handler gets the parsed fields (and uploads).
 */
export function action(pc: PageContext, path: string, role: Role, handler: (ctx: Context, form: Params, user: User) => Promise<void> | void, opts: { upload?: string } = {}): void {
  // Only the form that names an upload field takes a file; every other form refuses file parts.
  const limits: BodyLimits = opts.upload ? { ...FORM_LIMITS, upload: { fields: [opts.upload], maxBytes: pc.m.config.maxUploadBytes } } : FORM_LIMITS;
  pc.router.post(path, async (ctx) => {
    const { session } = authOf(ctx);
    if (denied(pc, ctx, role)) return;
    let form: Params;
    try {
      form = await readParams(ctx, limits);
    } catch (e) {
      if (e instanceof BodyRejected) {
        render(pc.env, ctx, 'error.njk', { title: e.status === 413 ? 'Too large' : 'Bad request', message: e.message }, e.status);
        return;
      }
      throw e;
    }
    const token = form.get('_csrf') ?? ctx.get('X-CSRF-Token');
    if (!session || !token || !safeEqual(token, session.csrf)) {
      render(pc.env, ctx, 'error.njk', { title: 'Form expired', message: 'The form was missing its security token or it did not match your session. Reload the page and try again.' }, 403);
      return;
    }
    await handler(ctx, form, sessionUser(ctx)!);
  });
}

/** `more`: the total is a lower bound (a long history is counted only so far). */
export interface Page { offset: number; limit: number; total: number; more: boolean; from: number; to: number; prev: number | null; next: number | null }

export function pageOf(ctx: Context, total: number, limit = 50, exact = true): Page {
  const raw = Number(ctx.query.offset ?? 0);
  const offset = Number.isInteger(raw) && raw > 0 ? raw : 0;
  return {
    offset, limit, total, more: !exact, from: total ? offset + 1 : 0, to: Math.min(total, offset + limit),
    prev: offset > 0 ? Math.max(0, offset - limit) : null, next: offset + limit < total ? offset + limit : null,
  };
}

/** The query string of a list page without its offset, ready for "&offset=N". */
export function baseQuery(ctx: Context, keys: string[]): string {
  const q = new URLSearchParams();
  for (const k of keys) {
    const v = ctx.query[k];
    if (typeof v === 'string' && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return `${(ctx.state.prefix as string | undefined) ?? ""}${ctx.path}?${s}${s ? "&" : ""}offset=`;
}

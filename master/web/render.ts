import nunjucks from 'nunjucks';
import type { Context } from 'koa';
import { join } from 'node:path';
import { authOf, hasRole } from '../http/auth.ts';

const TEMPLATES = join(import.meta.dirname, 'templates');
const FLASH_COOKIE = 'sp_flash';

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function pad(n: number): string { return String(n).padStart(2, '0'); }

/** UTC text for the server-rendered page; the browser rewrites it in the user's timezone. */
function utcText(d: Date): string {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '—';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

export function createEnvironment(): nunjucks.Environment {
  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(TEMPLATES, { noCache: process.env.SPIDERPLANE_DEV === '1' }), {
    autoescape: true,
    throwOnUndefined: false,
  });
  env.addFilter('time', (ms: number | null | undefined, mode?: string) => {
    if (ms === null || ms === undefined) return '—';
    const d = new Date(ms);
    // The <time> element carries the instant; app.js shows it in the viewer's own timezone.
    return new nunjucks.runtime.SafeString(`<time datetime="${d.toISOString()}" data-localtime="${mode === 'relative' ? 'relative' : 'full'}">${escapeHtml(utcText(d))}</time>`);
  });
  // For attributes (a title), where markup cannot go: the instant as UTC text.
  env.addFilter('timeText', (ms: number | null | undefined) => (ms === null || ms === undefined ? '—' : utcText(new Date(ms))));
  env.addFilter('duration', formatDuration);
  env.addFilter('bytes', formatBytes);
  env.addFilter('pct', (v: number | null | undefined) => (v === null || v === undefined ? '—' : `${Math.round(v)}%`));
  env.addFilter('json', (v: unknown) => JSON.stringify(v));
  return env;
}

export interface Flash { kind: 'ok' | 'error'; text: string }

export function setFlash(ctx: Context, flash: Flash): void {
  ctx.cookies.set(FLASH_COOKIE, Buffer.from(JSON.stringify(flash)).toString('base64url'), { httpOnly: true, sameSite: 'lax', path: '/', maxAge: 60_000, overwrite: true });
}

function takeFlash(ctx: Context): Flash | null {
  const raw = ctx.cookies.get(FLASH_COOKIE);
  if (!raw) return null;
  ctx.cookies.set(FLASH_COOKIE, '', { httpOnly: true, sameSite: 'lax', path: '/', maxAge: 0, overwrite: true });
  try {
    const f = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as Flash;
    return f && typeof f.text === 'string' ? { kind: f.kind === 'error' ? 'error' : 'ok', text: f.text.slice(0, 500) } : null;
  } catch {
    return null;
  }
}

export function prefixOf(ctx: Context): string {
  return typeof ctx.state.prefix === 'string' ? ctx.state.prefix : '';
}

/** Renders a page with what every page needs: the user, their role, the CSRF token, the path prefix. */
export function render(env: nunjucks.Environment, ctx: Context, template: string, vars: Record<string, unknown> = {}, status = 200): void {
  const { user, session } = authOf(ctx);
  const html = env.render(template, {
    ...vars,
    me: user,
    can: { operate: hasRole(user, 'operator'), admin: hasRole(user, 'admin') },
    csrf: session?.csrf ?? '',
    prefix: prefixOf(ctx),
    path: ctx.path,
    flash: takeFlash(ctx),
  });
  ctx.status = status;
  ctx.type = 'text/html; charset=utf-8';
  ctx.body = html;
}

/** Redirect inside the app (honours the path prefix), optionally with a one-time message. */
export function redirect(ctx: Context, to: string, flash?: Flash): void {
  if (flash) setFlash(ctx, flash);
  ctx.redirect(prefixOf(ctx) + to);
}

// Security headers on every answer of the slave. Its pages are Scrapyd's plain HTML, which
// ScrapydWeb reads server-side with regular expressions (headers do not matter to it), and which a
// browser shows with their inline <style> blocks and the Cancel button's confirm() handler; files
// under /logs and /items are whatever a spider wrote, so nothing served may run script or be framed.
import { createHash } from 'node:crypto';
import type { Context, Next } from 'koa';
import { CANCEL_CONFIRM_HANDLER } from './html_views.ts';

const handlerHash = createHash('sha256').update(CANCEL_CONFIRM_HANDLER).digest('base64');

export const SLAVE_CSP = [
  "default-src 'none'",
  "style-src 'unsafe-inline'",
  // Only the Cancel button's confirm(): an inline handler allowed by its hash, no other script.
  `script-src 'unsafe-hashes' 'sha256-${handlerHash}'`,
  "img-src 'self' data:",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

export async function slaveSecurityHeaders(ctx: Context, next: Next): Promise<void> {
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Content-Security-Policy', SLAVE_CSP);
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('Referrer-Policy', 'same-origin');
  await next();
}

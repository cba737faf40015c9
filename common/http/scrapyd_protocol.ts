import type { Context, Next } from 'koa';
import { timingSafeEqual } from 'node:crypto';
import { pyJson } from '../pyjson.ts';

// The envelope and manners of Scrapyd's HTTP API, shared by every endpoint (the master's Scrapyd
// facade uses them too): JSON with status and node_name, errors as HTTP 200, CORS, method rules.

/** An error answered the Scrapyd way: HTTP 200, {"status": "error", "message": …}. */
export class ApiError extends Error {}

export type HttpMethod = 'GET' | 'POST';

export const NOT_FOUND_HTML = `
<html>
  <head><title>404 - No Such Resource</title></head>
  <body>
    <h1>No Such Resource</h1>
    <p>Sorry. No luck finding that resource.</p>
  </body>
</html>
`;

function allowed(method: HttpMethod): string {
  return method === 'GET' ? 'OPTIONS, HEAD, GET' : 'OPTIONS, HEAD, POST';
}

function setCors(ctx: Context, method: HttpMethod): void {
  ctx.set('Access-Control-Allow-Origin', '*');
  ctx.set('Access-Control-Allow-Methods', allowed(method));
  ctx.set('Access-Control-Allow-Headers', 'X-Requested-With');
}

export function sendJson(ctx: Context, body: string): void {
  ctx.status = 200;
  ctx.set('Content-Type', 'application/json');
  ctx.body = body + '\n';
}

/** Wraps a handler: answers OPTIONS, refuses other methods as Scrapyd does, adds the envelope. */
export function scrapydEndpoint(
  nodeName: () => string,
  method: HttpMethod,
  handler: (ctx: Context) => Promise<Record<string, unknown>> | Record<string, unknown>,
) {
  return async (ctx: Context): Promise<void> => {
    setCors(ctx, method);
    if (ctx.method === 'OPTIONS') {
      ctx.set('Allow', allowed(method));
      ctx.status = 204;
      return;
    }
    // HEAD never runs a POST handler: a link checker must not schedule or delete anything.
    const accepted = method === 'GET' ? ['GET', 'HEAD'] : ['POST'];
    if (!accepted.includes(ctx.method)) {
      const expected = method === 'GET' ? "[b'GET', b'HEAD', b'OPTIONS']" : "[b'HEAD', b'OPTIONS', b'POST']";
      sendJson(ctx, pyJson({ status: 'error', message: `UnsupportedMethod: Expected one of ${expected}`, node_name: nodeName() }));
      return;
    }
    try {
      const payload = await handler(ctx);
      if (ctx.body !== undefined && ctx.body !== null) return; // the handler wrote a raw body itself
      sendJson(ctx, pyJson({ ...payload, status: 'ok', node_name: nodeName() }));
    } catch (e) {
      if (!(e instanceof ApiError)) console.error(`[spiderplane] ${ctx.method} ${ctx.path} failed:`, e);
      const message = e instanceof ApiError ? e.message : `${(e as Error).name}: ${(e as Error).message}`;
      sendJson(ctx, pyJson({ status: 'error', message, node_name: nodeName() }));
    }
  };
}

/** A parameter Scrapyd requires, with Scrapyd's message when it is missing (also exported by scrapyd_params.ts). */
export function required(value: string | undefined, name: string): string {
  if (value === undefined) throw new ApiError(`'${name}' parameter is required`);
  return value;
}

function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

/**
 * HTTP basic auth on every path (as Scrapyd with username/password set), and/or a Bearer token
 * (the cluster token the master uses). Nothing is required when neither is configured.
 */
export function authMiddleware(opts: { username: string | null; password: string | null; token: string | null; realm: string }) {
  const basicOn = opts.username !== null && opts.password !== null;
  return async (ctx: Context, next: Next): Promise<void> => {
    if (!basicOn && opts.token === null) return next();
    const header = ctx.get('Authorization');
    const [scheme, value = ''] = header.split(' ', 2);
    if (opts.token !== null && /^bearer$/i.test(scheme ?? '') && safeEqual(value.trim(), opts.token)) return next();
    if (/^basic$/i.test(scheme ?? '')) {
      const decoded = Buffer.from(value.trim(), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const user = decoded.slice(0, colon);
      const pass = decoded.slice(colon + 1);
      if (colon >= 0 && basicOn && safeEqual(user, opts.username!) && safeEqual(pass, opts.password!)) return next();
      // The master may also present the cluster token as a basic-auth password.
      if (colon >= 0 && opts.token !== null && safeEqual(pass, opts.token)) return next();
    }
    ctx.status = 401;
    ctx.set('WWW-Authenticate', `basic realm="${opts.realm}"`);
    ctx.set('Content-Type', 'text/html');
    ctx.body = 'Unauthorized';
  };
}

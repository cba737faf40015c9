import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

// One HTTP request on a connection of its own (no pool), answered as a fetch Response. The node
// client retries with it when a pooled keep-alive connection turned out to be dead
// (UND_ERR_SOCKET: the node closed it while it sat idle, e.g. across a master that was frozen):
// fetch's pool would hand out another stale one, this never does.

/** Pool errors after which the request never reached the node's application. */
const STALE_CONNECTION_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE', 'UND_ERR_CLOSED']);

export function isStaleConnection(e: unknown): boolean {
  const code = (e as { cause?: { code?: string } }).cause?.code;
  return (e as Error).name !== 'TimeoutError' && (e as Error).name !== 'AbortError' && code !== undefined && STALE_CONNECTION_CODES.has(code);
}

/** A body fetch could send that can be sent again as it is (not a stream or a form with files). */
export function replayableBody(body: unknown): string | null | false {
  if (body === undefined || body === null) return null;
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) return body.toString();
  return false;
}

export function freshRequest(url: string, init: { method?: string; headers: Record<string, string>; body: string | null; timeoutMs: number }): Promise<Response> {
  const u = new URL(url);
  const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
  const headers: Record<string, string> = { ...init.headers, connection: 'close' };
  if (init.body !== null) {
    headers['content-type'] ??= 'application/x-www-form-urlencoded;charset=UTF-8';
    headers['content-length'] = String(Buffer.byteLength(init.body));
  }
  return new Promise((resolve, reject) => {
    const req = send(u, { method: init.method ?? 'GET', headers, agent: false, timeout: init.timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(', ') : v);
        const status = res.statusCode ?? 502;
        resolve(new Response(status === 204 || status === 304 ? null : Buffer.concat(chunks), { status, headers: h }));
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer in ${init.timeoutMs / 1000} s`), { name: 'TimeoutError' })));
    req.on('error', reject);
    req.end(init.body ?? undefined);
  });
}

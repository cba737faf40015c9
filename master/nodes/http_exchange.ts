import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

// One request answered whole, over node:http(s) with one keep-alive pool per master process. The
// node client's JSON calls go here rather than through fetch: heartbeats are two of them per node
// per interval, and at 1 000 nodes fetch's web streams and promise chains were most of the master's
// CPU. Guarantees:
// - a deadline covers the whole exchange (connect, answer, body) and its timer is cleared at the end;
// - an answer is read up to MAX_ANSWER_BYTES, no further (a broken or hostile node cannot fill memory);
// - a request that failed on a reused keep-alive connection before any answer came (the node closed
//   it while it sat idle) is sent once more on a new connection; any other failure stands;
// - a redirect is not followed (credentials stay with the URL the operator gave): the caller names
//   where it points, so the node's URL can be set to that.

export const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

const httpAgent = new HttpAgent({ keepAlive: true });
const httpsAgent = new HttpsAgent({ keepAlive: true });

export interface ExchangeInit {
  method?: string;
  headers: Record<string, string>;
  /** a urlencoded form (or any text); null for none */
  body: string | null;
  timeoutMs: number;
}

export interface Answer {
  status: number;
  text: string;
  /** where a redirect points (it is not followed: the node's URL should be that one) */
  location?: string;
}

/** The deadline passed: `name` is TimeoutError, as fetch's is. */
export class ExchangeTimeout extends Error {
  override readonly name = 'TimeoutError';
}

export async function exchange(url: string, init: ExchangeInit): Promise<Answer> {
  try {
    return await once(url, init, true);
  } catch (e) {
    if (!(e as { staleSocket?: boolean }).staleSocket) throw e;
    return once(url, init, false);
  }
}

function once(url: string, init: ExchangeInit, pooled: boolean): Promise<Answer> {
  const u = new URL(url);
  const https = u.protocol === 'https:';
  const headers: Record<string, string> = { ...init.headers };
  if (init.body !== null) {
    headers['content-type'] ??= 'application/x-www-form-urlencoded;charset=UTF-8';
    headers['content-length'] = String(Buffer.byteLength(init.body));
  }
  const agent = pooled ? (https ? httpsAgent : httpAgent) : false;
  if (!pooled) headers.connection = 'close';
  return new Promise<Answer>((resolve, reject) => {
    let answered = false;
    let req: ClientRequest;
    const timer = setTimeout(() => req.destroy(new ExchangeTimeout(`no answer in ${init.timeoutMs / 1000} s`)), init.timeoutMs);
    const fail = (e: Error) => {
      clearTimeout(timer);
      // Nothing came back on a pooled connection that had served before: the node closed it while idle.
      if (!answered && req.reusedSocket && (e as { code?: string }).code === 'ECONNRESET') Object.assign(e, { staleSocket: true });
      reject(e);
    };
    req = (https ? httpsRequest : httpRequest)(u, { method: init.method ?? 'GET', headers, agent }, (res: IncomingMessage) => {
      answered = true;
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_ANSWER_BYTES) { fail(new Error(`answer over ${MAX_ANSWER_BYTES / 1024 / 1024} MiB`)); req.destroy(); return; }
        chunks.push(c);
      });
      res.on('error', fail);
      res.on('end', () => {
        clearTimeout(timer);
        const location = typeof res.headers.location === 'string' ? res.headers.location : undefined;
        resolve({ status: res.statusCode ?? 502, text: Buffer.concat(chunks, size).toString('utf8'), ...(location ? { location } : {}) });
      });
    });
    req.on('error', fail);
    req.end(init.body ?? undefined);
  });
}

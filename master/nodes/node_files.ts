import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { nodeAuthHeaders, NodeUnreachable, type NodeTarget } from './node_client.ts';

// Files of a node (logs, items, listings, LogParser JSON) fetched for the master's Scrapyd
// surface. A file is streamed, never buffered: the caller pipes the response on. A node that is
// down is found out fast — a short connect timeout, then an idle timeout while it answers — so a
// request for its files ends with a clear error instead of hanging.

export interface NodeFileOptions {
  /** Longest wait for the TCP connection. */
  connectTimeoutMs: number;
  /** Longest silence once connected (for the headers, and between chunks). */
  idleTimeoutMs: number;
}

export const DEFAULT_FILE_TIMEOUTS: NodeFileOptions = { connectTimeoutMs: 3_000, idleTimeoutMs: 20_000 };

export interface NodeFile {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body as it arrives: pipe it on, or destroy it. */
  body: IncomingMessage;
}

/** GETs `path` from the node, resolving once the headers are in. Throws NodeUnreachable. */
export function openNodeFile(node: NodeTarget, clusterToken: string | null, path: string, headers: Record<string, string> = {}, opts: NodeFileOptions = DEFAULT_FILE_TIMEOUTS): Promise<NodeFile> {
  const url = new URL(node.url.replace(/\/+$/, '') + path);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<NodeFile>((resolve, reject) => {
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      reject(new NodeUnreachable(`${node.url}: ${why}`));
    };
    const req = request(url, { method: 'GET', headers: { ...nodeAuthHeaders(node, clusterToken), ...headers } });
    const connectTimer = setTimeout(() => {
      fail(`no connection in ${opts.connectTimeoutMs / 1000} s`);
      req.destroy();
    }, opts.connectTimeoutMs);
    req.on('socket', (socket) => {
      if (!socket.connecting) clearTimeout(connectTimer); // a kept-alive connection
      else socket.once('connect', () => clearTimeout(connectTimer));
    });
    req.setTimeout(opts.idleTimeoutMs, () => {
      fail(`no answer in ${opts.idleTimeoutMs / 1000} s`);
      req.destroy();
    });
    req.on('error', (e: Error & { code?: string }) => {
      clearTimeout(connectTimer);
      fail(e.code ?? e.message);
    });
    req.on('response', (res) => {
      clearTimeout(connectTimer);
      if (settled) {
        res.destroy();
        return;
      }
      settled = true;
      resolve({ status: res.statusCode ?? 502, headers: res.headers, body: res });
    });
    req.end();
  });
}

/** A small text (a listing, stats.json) read whole, up to maxBytes; null when it is not a 200. */
export async function readNodeText(node: NodeTarget, clusterToken: string | null, path: string, maxBytes: number, opts: NodeFileOptions = DEFAULT_FILE_TIMEOUTS): Promise<string | null> {
  const file = await openNodeFile(node, clusterToken, path, {}, opts);
  if (file.status !== 200) {
    file.body.resume();
    return null;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of file.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) throw new NodeUnreachable(`${node.url}${path} is larger than ${maxBytes} bytes`);
      chunks.push(chunk);
    }
  } catch (e) {
    file.body.destroy();
    if (e instanceof NodeUnreachable) throw e;
    throw new NodeUnreachable(`${node.url}: ${(e as Error).message}`);
  }
  return Buffer.concat(chunks).toString('utf8');
}

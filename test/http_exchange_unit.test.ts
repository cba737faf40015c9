// The node client's HTTP exchange (master/nodes/http_exchange.ts) against real servers on 127.0.0.1:
// a pooled connection the node dropped while idle is retried once on a new one, a reset on a new
// connection is not, an answer is capped, the deadline covers a node that never answers, and a
// redirect is reported, not followed.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { exchange, MAX_ANSWER_BYTES } from '../master/nodes/http_exchange.ts';
import { NodeApiError, NodeClient } from '../master/nodes/node_client.ts';

const servers: Server[] = [];
after(() => { for (const s of servers) { s.closeAllConnections(); s.close(); } });

async function serve(handler: (req: IncomingMessage, res: ServerResponse, nthOnSocket: number) => void): Promise<{ url: string; requests: () => number }> {
  let requests = 0;
  const perSocket = new WeakMap<Socket, number>();
  const server = createServer((req, res) => {
    requests++;
    const n = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, n);
    handler(req, res, n);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => requests };
}

const init = { headers: {}, body: null, timeoutMs: 10_000 };

test('a pooled connection dropped by the node is retried once on a new connection', async () => {
  // The second request on any connection finds it closed (as a node closes an idle keep-alive one).
  const s = await serve((req, res, n) => { if (n > 1) req.socket.destroy(); else res.end(`ok ${req.method} ${req.url}`); });
  assert.deepEqual(await exchange(`${s.url}/a`, init), { status: 200, text: 'ok GET /a' });
  assert.deepEqual(await exchange(`${s.url}/b`, { ...init, method: 'POST', body: 'x=1' }), { status: 200, text: 'ok POST /b' });
  assert.equal(s.requests(), 3, 'the one on the reused connection, then one on a new connection');
});

test('a reset on a new connection is not retried', async () => {
  const s = await serve((req) => req.socket.destroy());
  await assert.rejects(exchange(`${s.url}/x`, init), (e: Error & { code?: string }) => e.code === 'ECONNRESET');
  assert.equal(s.requests(), 1);
});

test('an answer over the cap is refused, not buffered', async () => {
  const piece = Buffer.alloc(1024 * 1024, 'a');
  const s = await serve((_req, res) => {
    let sent = 0;
    const more = () => {
      while (sent <= MAX_ANSWER_BYTES) {
        sent += piece.length;
        if (!res.write(piece)) { res.once('drain', more); return; }
      }
      res.end();
    };
    res.on('error', () => undefined);
    more();
  });
  await assert.rejects(exchange(`${s.url}/big`, init), /answer over 64 MiB/);
});

test('a node that never answers meets the deadline', async () => {
  const s = await serve(() => undefined);
  await assert.rejects(exchange(`${s.url}/slow`, { ...init, timeoutMs: 300 }), (e: Error) => e.name === 'TimeoutError' && /no answer in 0.3 s/.test(e.message));
});

test('a redirect is not followed: the node client names where it points', async () => {
  const s = await serve((_req, res) => { res.writeHead(301, { Location: 'https://node.example/listjobs.json' }); res.end('moved'); });
  assert.deepEqual(await exchange(`${s.url}/listjobs.json`, init), { status: 301, text: 'moved', location: 'https://node.example/listjobs.json' });
  const client = new NodeClient({ url: s.url, username: null, password: null }, null, 10_000);
  await assert.rejects(client.listJobs(), (e: Error) => e instanceof NodeApiError && /redirects \(HTTP 301\) to https:\/\/node\.example\/listjobs\.json: give the node that URL/.test(e.message));
  assert.equal(s.requests(), 2, 'one request each, nothing followed');
});

// daemon/nginx/'s site files under Debian's real nginx (temporary prefix, free 127.0.0.1 ports,
// a self-signed certificate in place of the TLS placeholders), in front of a real master with a
// real slave: the UI, the API and the Scrapyd endpoints over HTTPS, the HTTP->HTTPS redirect, a
// 10 MB package upload, and a run's live log stream arriving while the spider still runs. The
// /spiderplane/ variant is checked against a tiny koa app with master/http/proxy.ts, which shows
// what reaches the master: the prefix stripped, X-Forwarded-* set, streams and uploads passed.
// Needs: apt-get install nginx (scripts/install-test-deps.sh), openssl.
// Run: cd /work/main && npx tsx --test test/daemon_nginx.test.ts
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { PassThrough } from 'node:stream';
import Koa from 'koa';
import { startMaster, basic, ADMIN, type MasterHandle } from './helpers/master_process.ts';
import { tempDir, waitFor, type SlaveHandle } from './helpers/slave_process.ts';
import { FAST_MASTER_ARGS, joinSlave, waitRunState, type RunView } from './helpers/master_slave_pair.ts';
import { buildZip, NODE_PACKAGE_DIR } from './helpers/fixtures.ts';
import { multipart, NGINX, selfSignedCert, startNginx, tlsFetch, tlsStream, type Cert, type NginxHandle } from './helpers/nginx.ts';
import { trustedProxy } from '../master/http/proxy.ts';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const AUTH = { Authorization: basic(ADMIN.user, ADMIN.password) };
const skip = !existsSync(NGINX) && 'nginx is not installed (bash scripts/install-test-deps.sh)';

/** The fixture's Node spiders plus 10 MB of incompressible bytes: a 10 MB upload. */
async function bigPackage(dir: string): Promise<Buffer> {
  const files: Record<string, string | Buffer> = {};
  for (const f of readdirSync(NODE_PACKAGE_DIR)) files[f] = readFileSync(join(NODE_PACKAGE_DIR, f));
  files['data/blob.bin'] = randomBytes(10 * 1024 * 1024);
  return readFileSync(await buildZip(join(dir, 'big.zip'), files));
}

describe('nginx with daemon/nginx/spiderplane.conf in front of a master and a slave', { skip }, () => {
  const work = tempDir('spiderplane-nginx-test-');
  let cert: Cert;
  let master: MasterHandle;
  let slave: SlaveHandle;
  let nginx: NginxHandle;
  const https = (path: string, opts: Parameters<typeof tlsFetch>[2] = {}) => tlsFetch(nginx.httpsUrl + path, cert.pem, opts);

  before(async () => {
    [cert, master] = await Promise.all([selfSignedCert(work), startMaster({ args: FAST_MASTER_ARGS })]);
    [slave, nginx] = await Promise.all([joinSlave(master, 'ngx-node', ['--max-proc', '2']), startNginx('spiderplane.conf', new URL(master.url).host, cert)]);
  });
  after(async () => {
    await nginx?.stop();
    await Promise.all([slave?.stop(), master?.stop()]);
  });

  test('plain HTTP is redirected to HTTPS', async () => {
    const r = await fetch(nginx.httpUrl + '/api/nodes?x=1', { redirect: 'manual' });
    assert.equal(r.status, 301);
    assert.match(r.headers.get('location') ?? '', /^https:\/\/127\.0\.0\.1\/api\/nodes\?x=1$/);
  });

  test('the UI, the API and the Scrapyd endpoints come through over TLS', async () => {
    // the UI at /: whatever the master answers directly, nginx answers the same
    const direct = await fetch(master.url + '/', { redirect: 'manual' });
    const proxied = await https('/');
    assert.equal(proxied.status, direct.status, nginx.output());
    assert.equal(proxied.text, await direct.text());

    const nodes = await https('/api/nodes', { headers: AUTH });
    assert.equal(nodes.status, 200, nodes.text);
    const list = (JSON.parse(nodes.text) as { nodes: Array<{ name: string; status: string }> }).nodes;
    assert.deepEqual(list.map((n) => [n.name, n.status]), [['ngx-node', 'online']]);
    assert.equal((await https('/api/nodes')).status, 401);

    const daemon = JSON.parse((await https('/daemonstatus.json', { headers: AUTH })).text) as Record<string, unknown>;
    assert.equal(daemon.status, 'ok', JSON.stringify(daemon));
    const projects = JSON.parse((await https('/listprojects.json', { headers: AUTH })).text) as Record<string, unknown>;
    assert.equal(projects.status, 'ok', JSON.stringify(projects));
  });

  test('a 10 MB package upload is proxied, stored and deployed', async () => {
    const data = await bigPackage(work);
    assert.ok(data.length > 10 * 1024 * 1024, `package is ${data.length} bytes`);
    const form = new FormData();
    form.set('version', '1');
    form.set('egg', new Blob([new Uint8Array(data)]), 'big.zip');
    const { body, contentType } = await multipart(form);
    const r = await https('/api/projects/big/versions?wait=1', { method: 'POST', body, headers: { ...AUTH, 'Content-Type': contentType, 'Content-Length': String(body.length) } });
    assert.equal(r.status, 201, `${r.status} ${r.text.slice(0, 500)}\n${nginx.output()}`);
    const targets = (JSON.parse(r.text) as { deployment: { targets: Array<{ node: string; state: string }> } }).deployment.targets;
    assert.deepEqual(targets.map((t) => [t.node, t.state]), [['ngx-node', 'ok']]);
    // and through the Scrapyd endpoint too
    const versions = JSON.parse((await https('/listversions.json?project=big', { headers: AUTH })).text) as { versions: string[] };
    assert.deepEqual(versions.versions, ['1']);
  });

  test('the live log stream arrives through nginx while the spider runs', async () => {
    const started = await master.api<{ runs: RunView[] }>('POST', '/api/runs', { project: 'big', spider: 'count', args: { n: '100000', interval_ms: '150' } }); // runs until cancelled below
    assert.equal(started.status, 201, JSON.stringify(started.body));
    const job = started.body.runs[0]!.job;
    await waitRunState(master, job, (r) => r.state === 'running', 'running');

    const { res, close } = await tlsStream(`${nginx.httpsUrl}/api/runs/${job}/log/stream`, cert.pem, AUTH);
    try {
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers['content-type']), /^text\/event-stream/);
      // read events as they come; after two separate log events with items in them, the run must
      // still be running (not buffered to the end)
      const logEvents: string[] = [];
      let buf = '';
      let stateWhileStreaming = '';
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${logEvents.length} log events in 60 s: ${JSON.stringify(logEvents)}`)), 60_000);
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const event = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (event === 'log' && data && /count item \d+/.test(JSON.parse(data) as string)) logEvents.push(JSON.parse(data) as string);
            if (event === 'end') { clearTimeout(timer); reject(new Error(`stream ended before two log events: ${block}`)); }
          }
          if (logEvents.length >= 2 && !stateWhileStreaming) {
            stateWhileStreaming = 'checking';
            void master.api<{ run: RunView }>('GET', `/api/runs/${job}`).then((r) => { stateWhileStreaming = r.body.run.state; clearTimeout(timer); resolve(); }, reject);
          }
        });
        res.on('error', reject);
        res.on('end', () => reject(new Error('stream closed early')));
      });
      assert.equal(stateWhileStreaming, 'running', 'log events came while the spider was still running');
      const lastItem = Math.max(...logEvents.join('').match(/count item (\d+)/g)!.map((s) => Number(s.split(' ')[2])));
      assert.ok(lastItem < 100000, `saw items up to ${lastItem} of 100000 before the end`);
    } finally {
      close();
      await master.api('POST', `/api/runs/${job}/cancel`);
    }
    await waitRunState(master, job, (r) => r.state !== 'running' && r.state !== 'pending', 'finished after cancel');
  });
});

describe('nginx: client-sent X-Forwarded-Prefix never passes the root site; the /spiderplane/ variant', { skip }, () => {
  const work = tempDir('spiderplane-nginx-prefix-');
  let cert: Cert;
  let echo: Server;
  let root: NginxHandle;
  let prefixed: NginxHandle;

  before(async () => {
    // what the master would see: the trustedProxy state, the path, and a few headers
    const app = new Koa();
    app.use(trustedProxy('127.0.0.1,::1'));
    app.use(async (ctx) => {
      const s = ctx.state as Record<string, unknown>;
      if (/^\/api\/runs\/[^/]+\/log\/stream$/.test(ctx.path)) {
        const stream = new PassThrough();
        ctx.set('Content-Type', 'text/event-stream');
        ctx.body = stream;
        let n = 0;
        const t = setInterval(() => { stream.write(`event: log\ndata: ${JSON.stringify(`line ${++n} at ${Date.now()}`)}\n\n`); if (n === 5) { clearInterval(t); stream.end(); } }, 300);
        return;
      }
      let size = 0;
      for await (const c of ctx.req) size += (c as Buffer).length;
      ctx.body = { path: ctx.path, search: ctx.search, clientIp: s.clientIp, proto: s.proto, host: s.host, prefix: s.prefix, viaProxy: s.viaProxy, size, method: ctx.method };
    });
    echo = app.listen(0, '127.0.0.1');
    await new Promise<void>((r) => echo.once('listening', () => r()));
    const upstream = `127.0.0.1:${(echo.address() as AddressInfo).port}`;
    cert = await selfSignedCert(work);
    [root, prefixed] = await Promise.all([startNginx('spiderplane.conf', upstream, cert), startNginx('spiderplane-prefix.conf', upstream, cert)]);
  });
  after(async () => {
    await Promise.all([root?.stop(), prefixed?.stop()]);
    echo?.close();
  });

  test('root site: forwarded headers set by nginx, a client-sent prefix dropped', async () => {
    const r = await tlsFetch(`${root.httpsUrl}/api/x?q=1`, cert.pem, { headers: { 'X-Forwarded-Prefix': '/evil', 'X-Forwarded-For': '203.0.113.5' } });
    const seen = JSON.parse(r.text) as Record<string, unknown>;
    assert.deepEqual(seen, {
      path: '/api/x', search: '?q=1', clientIp: '203.0.113.5', proto: 'https', host: new URL(root.httpsUrl).host, prefix: '', viaProxy: true, size: 0, method: 'GET',
    });
  });

  test('prefix site: the prefix is stripped and announced, streams and uploads pass', async () => {
    const base = prefixed.httpsUrl;
    const r = await tlsFetch(`${base}/spiderplane/api/nodes?a=b`, cert.pem);
    assert.deepEqual(JSON.parse(r.text), {
      path: '/api/nodes', search: '?a=b', clientIp: '127.0.0.1', proto: 'https', host: new URL(base).host, prefix: '/spiderplane', viaProxy: true, size: 0, method: 'GET',
    });
    const bare = await tlsFetch(`${base}/spiderplane`, cert.pem);
    assert.equal(bare.status, 301);
    assert.match(String(bare.headers.location), /\/spiderplane\/$/);
    // outside the prefix nothing is proxied
    assert.equal((await tlsFetch(`${base}/api/nodes`, cert.pem)).status, 404);

    // uploads (the regex location with its rewrite), 3 MB
    const body = randomBytes(3 * 1024 * 1024);
    const up = JSON.parse((await tlsFetch(`${base}/spiderplane/api/projects/p/versions`, cert.pem, { method: 'POST', body, headers: { 'Content-Type': 'application/octet-stream' } })).text) as Record<string, unknown>;
    assert.deepEqual([up.path, up.size, up.prefix], ['/api/projects/p/versions', body.length, '/spiderplane']);
    const add = JSON.parse((await tlsFetch(`${base}/spiderplane/addversion.json`, cert.pem, { method: 'POST', body: 'x' })).text) as Record<string, unknown>;
    assert.equal(add.path, '/addversion.json');

    // server-sent events: five lines 300 ms apart must arrive spread out, not all at the end
    const { res, close } = await tlsStream(`${base}/spiderplane/api/runs/j1/log/stream`, cert.pem);
    try {
      const arrivals: number[] = [];
      res.on('data', () => arrivals.push(Date.now()));
      await new Promise((r) => res.on('end', r));
      assert.ok(arrivals.length >= 4, `events arrived in ${arrivals.length} chunks`);
      assert.ok(arrivals.at(-1)! - arrivals[0]! >= 800, `chunks spread over ${arrivals.at(-1)! - arrivals[0]!} ms`);
    } finally {
      close();
    }
  });
});

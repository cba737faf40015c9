// master/http/proxy.ts: X-Forwarded-* believed from trusted proxies only, a validated path prefix.
// A tiny koa app on 127.0.0.1 with the middleware, called over real HTTP: the test client is the
// TCP peer 127.0.0.1, trusted or not depending on the list given to trustedProxy().
// Run: cd /work/main && npx tsx --test test/daemon_proxy_unit.test.ts
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import Koa from 'koa';
import { clientFromForwardedFor, ipMatcher, parseTrustedList, publicUrl, TRUSTED_PROXY_OPTION, trustedProxy, validPrefix } from '../master/http/proxy.ts';

interface Seen { clientIp: string; proto: string; host: string; prefix: string; viaProxy: boolean; path: string; url: string }

async function serve(trusted: string | string[]): Promise<{ url: string; server: Server }> {
  const app = new Koa();
  app.use(trustedProxy(trusted));
  app.use((ctx) => {
    const s = ctx.state as Seen;
    ctx.body = { clientIp: s.clientIp, proto: s.proto, host: s.host, prefix: s.prefix, viaProxy: s.viaProxy, path: ctx.path, url: publicUrl(ctx, '/api/runs') };
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((res) => server.once('listening', () => res()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function get(base: string, path: string, headers: Record<string, string> = {}): Promise<Seen> {
  const r = await fetch(base + path, { headers });
  assert.equal(r.status, 200);
  return (await r.json()) as Seen;
}

const FORWARDED = {
  'X-Forwarded-For': '203.0.113.7, 10.1.2.3',
  'X-Forwarded-Proto': 'https',
  'X-Forwarded-Host': 'crawl.example.com',
  'X-Forwarded-Prefix': '/spiderplane',
};

describe('trustedProxy middleware over real HTTP', () => {
  let trustedApp: { url: string; server: Server };
  let untrustedApp: { url: string; server: Server };
  let cidrApp: { url: string; server: Server };
  before(async () => {
    trustedApp = await serve('127.0.0.1,::1');
    untrustedApp = await serve(['192.0.2.1']);
    cidrApp = await serve('127.0.0.0/8, 10.0.0.0/8');
  });
  after(() => {
    for (const a of [trustedApp, untrustedApp, cidrApp]) a.server.close();
  });

  test('from a trusted peer the forwarded headers are used', async () => {
    const s = await get(trustedApp.url, '/api/nodes', FORWARDED);
    assert.equal(s.viaProxy, true);
    // 10.1.2.3 is not trusted by this app: it is the rightmost untrusted hop, i.e. the client as far as we can tell
    assert.equal(s.clientIp, '10.1.2.3');
    assert.equal(s.proto, 'https');
    assert.equal(s.host, 'crawl.example.com');
    assert.equal(s.prefix, '/spiderplane');
    assert.equal(s.path, '/api/nodes');
    assert.equal(s.url, 'https://crawl.example.com/spiderplane/api/runs');
  });

  test('trusted CIDRs are skipped in X-Forwarded-For: the rightmost untrusted address is the client', async () => {
    const s = await get(cidrApp.url, '/', FORWARDED);
    assert.equal(s.clientIp, '203.0.113.7');
    // a client cannot hide behind a spoofed leftmost entry: nginx appends the real peer on the right
    const spoofed = await get(cidrApp.url, '/', { 'X-Forwarded-For': '1.1.1.1, 198.51.100.9, 10.9.9.9' });
    assert.equal(spoofed.clientIp, '198.51.100.9');
    // all hops trusted: the leftmost one
    assert.equal((await get(cidrApp.url, '/', { 'X-Forwarded-For': '10.0.0.5, 127.0.0.2' })).clientIp, '10.0.0.5');
  });

  test('from an untrusted peer the headers are ignored and the socket decides', async () => {
    const s = await get(untrustedApp.url, '/api/nodes', FORWARDED);
    assert.equal(s.viaProxy, false);
    assert.equal(s.clientIp, '127.0.0.1');
    assert.equal(s.proto, 'http');
    assert.equal(s.host, new URL(untrustedApp.url).host);
    assert.equal(s.prefix, '');
    assert.equal(s.url, `${untrustedApp.url}/api/runs`);
  });

  test('without forwarded headers a trusted peer gets the socket values too', async () => {
    const s = await get(trustedApp.url, '/x');
    assert.deepEqual({ ip: s.clientIp, proto: s.proto, host: s.host, prefix: s.prefix }, { ip: '127.0.0.1', proto: 'http', host: new URL(trustedApp.url).host, prefix: '' });
  });

  test('malformed forwarded values fall back to the socket values', async () => {
    const s = await get(trustedApp.url, '/', {
      'X-Forwarded-For': 'not-an-ip', 'X-Forwarded-Proto': 'gopher', 'X-Forwarded-Host': 'evil.com/"><script>', 'X-Forwarded-Prefix': '/a/../b',
    });
    assert.equal(s.clientIp, '127.0.0.1');
    assert.equal(s.proto, 'http');
    assert.equal(s.host, new URL(trustedApp.url).host);
    assert.equal(s.prefix, '');
    // a malformed hop stops the walk: what lies left of it is not believed
    assert.equal((await get(trustedApp.url, '/', { 'X-Forwarded-For': '203.0.113.7, junk' })).clientIp, '127.0.0.1');
    assert.equal((await get(trustedApp.url, '/', { 'X-Forwarded-For': '[2001:db8::1]:443' })).clientIp, '2001:db8::1');
  });

  test('a prefix the proxy left in the path is removed, so routes match both ways', async () => {
    assert.equal((await get(trustedApp.url, '/spiderplane/api/nodes', FORWARDED)).path, '/api/nodes');
    assert.equal((await get(trustedApp.url, '/spiderplane', FORWARDED)).path, '/');
    // only whole segments: /spiderplanes is not under /spiderplane
    assert.equal((await get(trustedApp.url, '/spiderplanes/x', FORWARDED)).path, '/spiderplanes/x');
    // never from an untrusted peer
    assert.equal((await get(untrustedApp.url, '/spiderplane/api/nodes', FORWARDED)).path, '/spiderplane/api/nodes');
  });
});

describe('proxy helpers', () => {
  test('validPrefix', () => {
    for (const ok of ['/spiderplane', '/a/b-c/d_e', '/x.y', '/~user']) assert.equal(validPrefix(ok), ok, ok);
    assert.equal(validPrefix(''), '');
    assert.equal(validPrefix('/'), '');
    for (const bad of ['spiderplane', '/spiderplane/', '//evil.com', '/a//b', '/..', '/a/../b', '/a..b', '/./a', '/"x', "/x'y", '/<b>', '/a>b',
      '/a b', '/a\\b', '/%2e%2e', '/a\nb', '/' + 'x'.repeat(250)]) {
      assert.equal(validPrefix(bad), null, JSON.stringify(bad));
    }
  });

  test('ipMatcher and clientFromForwardedFor', () => {
    const m = ipMatcher(parseTrustedList(' 127.0.0.1 , ::1,10.0.0.0/8,fd00::/8 '));
    assert.ok(m('127.0.0.1') && m('::ffff:127.0.0.1') && m('::1') && m('10.200.0.1') && m('fd12::1'));
    assert.ok(!m('127.0.0.2') && !m('11.0.0.1') && !m('fe80::1') && !m('garbage'));
    assert.throws(() => ipMatcher(['nope']), /not an IP/);
    assert.throws(() => ipMatcher(['10.0.0.0/33']), /prefix length/);
    assert.equal(clientFromForwardedFor('127.0.0.1', '198.51.100.1:1234', m), '198.51.100.1');
    assert.deepEqual(parseTrustedList(''), []);
    assert.deepEqual(parseTrustedList(TRUSTED_PROXY_OPTION.default as string), ['127.0.0.1', '::1']);
  });

  test('an empty trusted list trusts nobody', async () => {
    const app = await serve('');
    try {
      const s = await get(app.url, '/', FORWARDED);
      assert.equal(s.viaProxy, false);
      assert.equal(s.clientIp, '127.0.0.1');
    } finally {
      app.server.close();
    }
  });
});

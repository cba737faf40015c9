// ScrapydWeb deploys with requests.post(url, data={'project': …, 'version': …, 'egg': egg_bytes}):
// an application/x-www-form-urlencoded body whose egg is the percent-encoded raw bytes ('+' for a
// space). Real Scrapyd takes it; so must the slave and the master's Scrapyd facade, byte for byte,
// with the same cap as a multipart upload.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ADMIN, basic, startMaster, type MasterHandle } from './helpers/master_process.ts';
import { startSlave, tempDir, type SlaveHandle } from './helpers/slave_process.ts';
import { buildDemoEgg, DEMO_SPIDERS, PYTHON } from './helpers/fixtures.ts';

const run = promisify(execFile);

/** Python's urllib.parse.quote_plus of bytes, which requests applies to every form value. */
function quotePlus(b: Buffer): string {
  let out = '';
  for (const x of b) {
    if ((x >= 0x30 && x <= 0x39) || (x >= 0x41 && x <= 0x5a) || (x >= 0x61 && x <= 0x7a) || x === 0x5f || x === 0x2e || x === 0x2d || x === 0x7e) out += String.fromCharCode(x);
    else if (x === 0x20) out += '+';
    else out += '%' + x.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** The body requests.post(data={...}) sends, in the dict's order. */
function requestsForm(fields: Array<[string, string | Buffer]>): string {
  return fields.map(([k, v]) => `${quotePlus(Buffer.from(k))}=${quotePlus(typeof v === 'string' ? Buffer.from(v) : v)}`).join('&');
}

/** Real python-requests, as ScrapydWeb calls it. */
async function pythonRequestsDeploy(url: string, project: string, version: string, eggPath: string, auth: [string, string] | null): Promise<Record<string, unknown>> {
  const script = [
    'import json, sys, requests',
    'url, project, version, egg, user, password = sys.argv[1:7]',
    "auth = (user, password) if user else None",
    "r = requests.post(url, data={'project': project, 'version': version, 'egg': open(egg, 'rb').read()}, auth=auth, timeout=120)",
    "assert r.request.headers['Content-Type'] == 'application/x-www-form-urlencoded', r.request.headers",
    'print(r.text)',
  ].join('\n');
  const { stdout } = await run(PYTHON, ['-c', script, url, project, version, eggPath, auth?.[0] ?? '', auth?.[1] ?? ''], { timeout: 120_000 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

let work: string;
let eggPath: string;
let egg: Buffer;

before(async () => {
  work = tempDir('spiderplane-scrapydweb-');
  eggPath = await buildDemoEgg(join(work, 'egg'));
  egg = readFileSync(eggPath);
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('slave', () => {
  let slave: SlaveHandle;
  before(async () => { slave = await startSlave({ args: ['--max-upload-mb', '1'] }); });
  after(async () => { await slave?.stop(); });

  test('a urlencoded egg (percent-encoded bytes, + for spaces) is deployed byte for byte', async () => {
    assert.ok(egg.includes(0x20) && egg.some((b) => b >= 0x80), 'the egg has spaces and high bytes to encode');
    const body = requestsForm([['project', 'demo'], ['version', 'r 1'], ['egg', egg]]);
    assert.ok(body.includes('+'));
    const r = await fetch(`${slave.url}/addversion.json`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body });
    assert.equal(await r.text(), `{"project": "demo", "version": "r 1", "spiders": ${DEMO_SPIDERS.length}, "status": "ok", "node_name": "testnode"}\n`);
    const stored = readFileSync(join(slave.dataDir, 'eggs', 'demo', 'r_1.egg'));
    assert.equal(createHash('sha256').update(stored).digest('hex'), createHash('sha256').update(egg).digest('hex'));
  });

  test('python-requests, as ScrapydWeb sends it', async () => {
    const j = await pythonRequestsDeploy(`${slave.url}/addversion.json`, 'demo', 'r2', eggPath, null);
    assert.deepEqual(j, { project: 'demo', version: 'r2', spiders: DEMO_SPIDERS.length, status: 'ok', node_name: 'testnode' });
  });

  test('a urlencoded egg meets the same cap as a multipart upload (--max-upload-mb 1)', async () => {
    const big = Buffer.concat([egg, Buffer.alloc(1024 * 1024 + 1, 0xff)]);
    const r = await fetch(`${slave.url}/addversion.json`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: requestsForm([['project', 'big'], ['version', '1'], ['egg', big]]) });
    assert.equal(await r.text(), `{"status": "error", "message": "upload 'egg' is too large: the limit is 1 MiB (--max-upload-mb)", "node_name": "testnode"}\n`);
  });
});

describe('master Scrapyd facade', () => {
  let master: MasterHandle;
  before(async () => { master = await startMaster(); });
  after(async () => { await master?.stop(); });

  test('python-requests deploy with basic auth: the stored package is the egg, byte for byte', async () => {
    const j = await pythonRequestsDeploy(`${master.url}/addversion.json`, 'demo', 'r 3', eggPath, [ADMIN.user, ADMIN.password]);
    assert.equal(j.status, 'ok', JSON.stringify(j));
    const projects = await master.api<{ projects: Array<{ project: string; versions: Array<{ version: string; sha256: string }> }> }>('GET', '/api/projects');
    const v = projects.body.projects.find((p) => p.project === 'demo')?.versions.find((x) => x.version === 'r_3');
    assert.ok(v, JSON.stringify(projects.body));
    assert.equal(v.sha256, createHash('sha256').update(egg).digest('hex'));
  });

  test('the hand-encoded form too', async () => {
    const r = await fetch(`${master.url}/addversion.json`, {
      method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: basic(ADMIN.user, ADMIN.password) },
      body: requestsForm([['project', 'demo'], ['version', 'r4'], ['egg', egg]]),
    });
    const j = (await r.json()) as Record<string, unknown>;
    assert.equal(j.status, 'ok', JSON.stringify(j));
  });
});

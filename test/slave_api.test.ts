// The slave's HTTP API against real Scrapyd 1.6's answers (shared/reference/scrapyd-1.6-responses.md):
// every Scrapyd endpoint byte for byte where Scrapyd's bytes are known, the HTML pages and log
// files ScrapydWeb/LogParser read, spiderplane's extensions, and HTTP auth. Two real daemons:
// one with --max-proc 1 (so a running `slow` job keeps later jobs pending), one with auth on.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { startSlave, tempDir, waitFor, waitForState, type SlaveHandle } from './helpers/slave_process.ts';
import { buildDemoEgg, buildNodePackage, buildZip } from './helpers/fixtures.ts';
import {
  NODE, NOT_FOUND_PAGE, assertApiHeaders, assertError, okBody, raw, rawGet, rawPost, rawUpload,
  scrapydwebJobs, scrapydwebListing, type RawResponse,
} from './helpers/api_checks.ts';

const GET_ENDPOINTS = ['/daemonstatus.json', '/listprojects.json', '/listversions.json', '/listspiders.json', '/listjobs.json', '/status.json'];
const POST_ENDPOINTS = ['/schedule.json', '/cancel.json', '/addversion.json', '/delproject.json', '/delversion.json'];
const EXTENSION_GET_ENDPOINTS = ['/metrics.json', '/errors.json', '/jobs.json'];

/** Python str(datetime): naive local time, microseconds (omitted only when exactly 0). */
const SCRAPYD_TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{6})?$/;

function parseScrapydTime(s: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{6}))?$/.exec(s);
  assert.ok(m, `not a Scrapyd time: ${s}`);
  const [, y, mo, d, h, mi, sec, us = '0'] = m;
  return new Date(+y!, +mo! - 1, +d!, +h!, +mi!, +sec!).getTime() + Number(us) / 1000;
}

function json(r: RawResponse): Record<string, unknown> {
  return JSON.parse(r.text) as Record<string, unknown>;
}

interface ListedJob { id: string; project: string; spider: string; [k: string]: unknown }
interface ListJobs { pending: ListedJob[]; running: ListedJob[]; finished: ListedJob[]; status: string; node_name: string }
interface SlaveJob { id: string; state: string; note: string | null; run_version: string | null; version: string | null; exit_code: number | null; outcome: string | null; signal: string | null; items_count: number | null; error_count: number | null; duration_seconds: number | null; pid: number | null; priority: number; args: Record<string, string>; settings: Record<string, string>; log_url: string | null; items_url: string | null }

let slave: SlaveHandle;
let authSlave: SlaveHandle;
let work: string;
let egg: Buffer;
let nodePkg: Buffer;
let base: string;

/** A generic package whose manifest names one spider (running /bin/sh -c command). */
async function genericPackage(name: string, spiders: Record<string, string>): Promise<Buffer> {
  const manifest = { spiders: Object.fromEntries(Object.entries(spiders).map(([k, cmd]) => [k, { command: cmd }])) };
  return readFileSync(await buildZip(`${work}/${name}.zip`, { 'spiderplane.json': JSON.stringify(manifest) }));
}

async function slaveJob(id: string): Promise<SlaveJob> {
  const r = await rawGet(base, '/jobs.json', { job: id });
  assertApiHeaders(r, 'GET', '/jobs.json');
  const jobs = (json(r) as { jobs: SlaveJob[] }).jobs;
  assert.equal(jobs.length, 1, `one run of ${id}: ${r.text}`);
  return jobs[0]!;
}

/** Waits until the job is finished and its record complete (items, errors: filled in once its log was read to the end). */
async function waitRecorded(id: string): Promise<SlaveJob> {
  return waitFor(`${id} finished and recorded`, async () => {
    const j = await slaveJob(id).catch(() => undefined);
    return j && j.state === 'finished' && j.error_count !== null ? j : undefined;
  });
}

before(async () => {
  work = tempDir('spiderplane-api-');
  [egg, nodePkg] = await Promise.all([
    buildDemoEgg(work).then((p) => readFileSync(p)),
    buildNodePackage(work).then((p) => readFileSync(p)),
  ]);
  [slave, authSlave] = await Promise.all([
    startSlave({ args: ['--max-proc', '1'] }),
    startSlave({ args: ['--username', 'u', '--password', 'p', '--cluster-token', 'T'] }),
  ]);
  base = slave.url;
});

after(async () => {
  await Promise.all([slave?.stop(), authSlave?.stop()]);
  for (const d of [work, slave?.dataDir, authSlave?.dataDir]) if (d) await rm(d, { recursive: true, force: true });
});

describe('protocol manners', () => {
  test('daemonstatus.json on a fresh daemon: exact body, CORS headers, HEAD', async () => {
    const r = await rawGet(base, '/daemonstatus.json');
    assertApiHeaders(r, 'GET', 'daemonstatus');
    assert.equal(r.text, '{"pending": 0, "running": 0, "finished": 0, "status": "ok", "node_name": "testnode"}\n');
    const h = await raw(`${base}/daemonstatus.json`, { method: 'HEAD' });
    assert.equal(h.status, 200);
    assert.equal(h.text, '');
    assert.equal(h.headers.get('content-type'), 'application/json');
    assert.equal(h.headers.get('access-control-allow-methods'), 'OPTIONS, HEAD, GET');
  });

  test('listprojects.json on an empty daemon', async () => {
    const r = await rawGet(base, '/listprojects.json');
    assertApiHeaders(r, 'GET', 'listprojects');
    assert.equal(r.text, okBody('"projects": []'));
  });

  test('OPTIONS answers 204 with an empty body, Allow and the CORS headers', async () => {
    for (const [paths, allow] of [[[...GET_ENDPOINTS, ...EXTENSION_GET_ENDPOINTS], 'OPTIONS, HEAD, GET'], [POST_ENDPOINTS, 'OPTIONS, HEAD, POST']] as const) {
      for (const path of paths) {
        const r = await raw(`${base}${path}`, { method: 'OPTIONS' });
        assert.equal(r.status, 204, path);
        assert.equal(r.text, '', path);
        assert.equal(r.headers.get('allow'), allow, `${path} Allow`);
        assert.equal(r.headers.get('access-control-allow-origin'), '*', path);
        assert.equal(r.headers.get('access-control-allow-methods'), allow, path);
        assert.equal(r.headers.get('access-control-allow-headers'), 'X-Requested-With', path);
      }
    }
  });

  test('a wrong method is the UnsupportedMethod error JSON (HTTP 200), for every endpoint', async () => {
    for (const path of POST_ENDPOINTS) {
      for (const method of ['GET', 'PUT', 'DELETE']) {
        const r = await raw(`${base}${path}?project=x&spider=y`, { method });
        assertError(r, 'POST', "UnsupportedMethod: Expected one of [b'HEAD', b'OPTIONS', b'POST']", `${method} ${path}`);
      }
    }
    for (const path of [...GET_ENDPOINTS, ...EXTENSION_GET_ENDPOINTS]) {
      for (const method of ['POST', 'PUT']) {
        const r = await raw(`${base}${path}`, { method, body: 'project=x' });
        assertError(r, 'GET', "UnsupportedMethod: Expected one of [b'GET', b'HEAD', b'OPTIONS']", `${method} ${path}`);
      }
    }
    // Byte-for-byte what Scrapyd sent for GET /schedule.json (Content-Length 119 with node_name "vm").
    const r = await rawGet(base, '/schedule.json', { project: 'demo', spider: 'quick' });
    assert.equal(r.text, `{"status": "error", "message": "UnsupportedMethod: Expected one of [b'HEAD', b'OPTIONS', b'POST']", "node_name": "testnode"}\n`);
    assert.equal(Number(r.headers.get('content-length')), 119 - 'vm'.length + NODE.length);
  });

  test('unknown paths and //listprojects.json are the TwistedWeb HTML 404', async () => {
    for (const path of ['/nosuch.json', '//listprojects.json', '/listprojects', '/logs/nosuch/spider/job.log', '/items/nosuch/spider/job.jl']) {
      const r = await rawGet(base, path);
      assert.equal(r.status, 404, path);
      assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8', path);
      assert.equal(r.text, NOT_FOUND_PAGE, path);
      assert.equal(r.headers.get('content-length'), '167', path);
    }
  });
});

describe('projects and versions', () => {
  test('addversion of a Scrapy egg: exact envelope, version echoed as given', async () => {
    const r1 = await rawUpload(base, 'demo', 'r1', egg);
    assertApiHeaders(r1, 'POST', 'addversion r1');
    assert.equal(r1.text, '{"project": "demo", "version": "r1", "spiders": 4, "status": "ok", "node_name": "testnode"}\n');
    const r2 = await rawUpload(base, 'demo', 'r2.0-beta', egg);
    assert.equal(r2.text, '{"project": "demo", "version": "r2.0-beta", "spiders": 4, "status": "ok", "node_name": "testnode"}\n');
  });

  test('listversions shows the sanitised name; listspiders with and without _version', async () => {
    const lv = await rawGet(base, '/listversions.json', { project: 'demo' });
    assertApiHeaders(lv, 'GET', 'listversions');
    assert.equal(lv.text, '{"versions": ["r1", "r2_0-beta"], "status": "ok", "node_name": "testnode"}\n');
    const spiders = '{"spiders": ["broken", "ignoresigint", "quick", "slow"], "status": "ok", "node_name": "testnode"}\n';
    const variants: Array<Record<string, string>> = [{ project: 'demo' }, { project: 'demo', _version: 'r1' }, { project: 'demo', _version: 'r2.0-beta' }, { project: 'demo', _version: 'r2_0-beta' }];
    for (const params of variants) {
      const r = await rawGet(base, '/listspiders.json', params);
      assertApiHeaders(r, 'GET', 'listspiders');
      assert.equal(r.text, spiders, JSON.stringify(params));
    }
    assertError(await rawGet(base, '/listspiders.json', { project: 'demo', _version: 'r9' }), 'GET', "version 'r9' not found");
    assertError(await rawGet(base, '/listspiders.json', { project: 'nope' }), 'GET', "project 'nope' not found");
    // Scrapyd's quirk: an unknown project has no versions, not an error.
    assert.equal((await rawGet(base, '/listversions.json', { project: 'nope' })).text, okBody('"versions": []'));
  });

  test('addversion of a generic zip package (spiderplane.json)', async () => {
    const r = await rawUpload(base, 'gen', '1.0', nodePkg);
    assertApiHeaders(r, 'POST', 'addversion generic');
    assert.equal(r.text, '{"project": "gen", "version": "1.0", "spiders": 4, "status": "ok", "node_name": "testnode"}\n');
    assert.equal((await rawGet(base, '/listversions.json', { project: 'gen' })).text, okBody('"versions": ["1_0"]'));
    assert.equal((await rawGet(base, '/listspiders.json', { project: 'gen' })).text, okBody('"spiders": ["count", "crash", "hello", "shell"]'));
    assert.equal((await rawGet(base, '/listprojects.json')).text, okBody('"projects": ["demo", "gen"]'));
  });

  test('versions sort as packaging.Version, else as strings; the newest is the default', async () => {
    // One spider per version, named after it, so listspiders tells which version is "newest".
    for (const v of ['9', '10', '1-post1']) {
      const r = await rawUpload(base, 'ord', v, await genericPackage(`ord-${v}`, { [`v${v.replace(/\W/g, '_')}`]: 'exit 0' }));
      assert.equal(r.text, okBody(`"project": "ord", "version": "${v}", "spiders": 1`));
    }
    // All PEP 440: 1.post1 < 9 < 10 (plain string order would put "10" before "9").
    assert.equal((await rawGet(base, '/listversions.json', { project: 'ord' })).text, okBody('"versions": ["1-post1", "9", "10"]'));
    assert.equal((await rawGet(base, '/listspiders.json', { project: 'ord' })).text, okBody('"spiders": ["v10"]'));

    // A job without _version runs the newest version.
    const s = await rawPost(base, '/schedule.json', { project: 'ord', spider: 'v10', jobid: 'ord-newest' });
    assert.equal(s.text, okBody('"jobid": "ord-newest"'));
    const job = await waitRecorded('ord-newest');
    assert.equal(job.run_version, '10');
    assert.equal(job.version, null);
    assert.equal(job.outcome, 'succeeded');

    // "1.9" is stored as "1_9", which is not PEP 440: Scrapyd falls back to plain string order
    // for the whole list, so "1_9" sorts after "10" and the newest becomes "9".
    assert.equal((await rawUpload(base, 'ord', '1.9', await genericPackage('ord-1.9', { v1_9: 'exit 0' }))).text,
      okBody('"project": "ord", "version": "1.9", "spiders": 1'));
    assert.equal((await rawGet(base, '/listversions.json', { project: 'ord' })).text, okBody('"versions": ["1-post1", "10", "1_9", "9"]'));
    assert.equal((await rawGet(base, '/listspiders.json', { project: 'ord' })).text, okBody('"spiders": ["v9"]'));

    // delversion takes the unsanitised name; PEP 440 order comes back.
    const d = await rawPost(base, '/delversion.json', { project: 'ord', version: '1.9' });
    assertApiHeaders(d, 'POST', 'delversion');
    assert.equal(d.text, '{"status": "ok", "node_name": "testnode"}\n');
    assert.equal((await rawGet(base, '/listversions.json', { project: 'ord' })).text, okBody('"versions": ["1-post1", "9", "10"]'));
  });

  test('delversion of the last version deletes the project', async () => {
    for (const v of ['10', '9']) assert.equal((await rawPost(base, '/delversion.json', { project: 'ord', version: v })).text, okBody(''));
    assert.equal((await rawGet(base, '/listprojects.json')).text, okBody('"projects": ["demo", "gen", "ord"]'));
    assert.equal((await rawPost(base, '/delversion.json', { project: 'ord', version: '1-post1' })).text, okBody(''));
    assert.equal((await rawGet(base, '/listprojects.json')).text, okBody('"projects": ["demo", "gen"]'));
    assert.equal((await rawGet(base, '/listversions.json', { project: 'ord' })).text, okBody('"versions": []'));
    assertError(await rawGet(base, '/listspiders.json', { project: 'ord' }), 'GET', "project 'ord' not found");
    assertError(await rawPost(base, '/schedule.json', { project: 'ord', spider: 'v10' }), 'POST', "project 'ord' not found");
    // Scrapyd's quirk: delversion in an unknown project says the version was not found.
    assertError(await rawPost(base, '/delversion.json', { project: 'ord', version: '9' }), 'POST', "version '9' not found");
  });
});

describe('jobs: schedule, listjobs, status, cancel (max_proc 1)', () => {
  let defaultId = '';
  let finishedBefore = 0;

  test('schedule: a slow job takes the only slot; others stay pending in priority order', async () => {
    finishedBefore = (json(await rawGet(base, '/listjobs.json')) as unknown as ListJobs).finished.length;
    const slot = await rawPost(base, '/schedule.json', { project: 'demo', spider: 'slow', jobid: 'slot-1', seconds: '3600' });
    assertApiHeaders(slot, 'POST', 'schedule');
    assert.equal(slot.text, '{"jobid": "slot-1", "status": "ok", "node_name": "testnode"}\n');
    await waitForState(base, 'slot-1', 'running');

    const d = await rawPost(base, '/schedule.json', { project: 'demo', spider: 'quick' });
    const m = /^\{"jobid": "([0-9a-f]{32})", "status": "ok", "node_name": "testnode"\}\n$/.exec(d.text);
    assert.ok(m, `default jobid must be 32 hex chars (uuid1().hex): ${d.text}`);
    defaultId = m[1]!;
    const fixed = await rawPost(base, '/schedule.json', [
      ['project', 'demo'], ['spider', 'quick'], ['jobid', 'fixed-1'], ['setting', 'MY_SETTING=hello'], ['setting', 'LOG_LEVEL=INFO'],
      ['foo', 'bar'], ['priority', '5'], ['_version', 'r1'],
    ]);
    assert.equal(fixed.text, okBody('"jobid": "fixed-1"'));
    assert.equal((await rawPost(base, '/schedule.json', { project: 'demo', spider: 'quick', jobid: 'cancel-me' })).text, okBody('"jobid": "cancel-me"'));
    assert.equal((await rawPost(base, '/schedule.json', { project: 'demo', spider: 'quick', jobid: 'low', priority: '-1.5', setting: 'A=b=c' })).text, okBody('"jobid": "low"'));

    const pending = '{"pending": ['
      + '{"id": "fixed-1", "project": "demo", "spider": "quick", "version": "r1", "settings": {"MY_SETTING": "hello", "LOG_LEVEL": "INFO"}, "args": {"foo": "bar"}}, '
      + `{"id": "${defaultId}", "project": "demo", "spider": "quick", "version": null, "settings": {}, "args": {}}, `
      + '{"id": "cancel-me", "project": "demo", "spider": "quick", "version": null, "settings": {}, "args": {}}, '
      + '{"id": "low", "project": "demo", "spider": "quick", "version": null, "settings": {"A": "b=c"}, "args": {}}], "running": [';
    for (const params of [{ project: 'demo' }, {}] as Array<Record<string, string>>) {
      const r = await rawGet(base, '/listjobs.json', params);
      assertApiHeaders(r, 'GET', 'listjobs');
      assert.ok(r.text.startsWith(pending), `listjobs ${JSON.stringify(params)} pending part:\n${r.text}\nexpected to start with\n${pending}`);
      assert.ok(r.text.endsWith(', "status": "ok", "node_name": "testnode"}\n'));
    }
    assertError(await rawGet(base, '/listjobs.json', { project: 'nope' }), 'GET', "project 'nope' not found");
  });

  test('listjobs running entry: id, project, spider, pid, start_time, log_url, items_url', async () => {
    // log_url/items_url are null until the files exist; the slow spider writes an item per second.
    const running = await waitFor('slot-1 to have its items file', async () => {
      const lj = json(await rawGet(base, '/listjobs.json', { project: 'demo' })) as unknown as ListJobs;
      const job = lj.running[0];
      return job && job['items_url'] !== null ? job : undefined;
    });
    assert.deepEqual(Object.keys(running), ['id', 'project', 'spider', 'pid', 'start_time', 'log_url', 'items_url']);
    assert.equal(running.id, 'slot-1');
    assert.equal(running.project, 'demo');
    assert.equal(running.spider, 'slow');
    assert.equal(typeof running['pid'], 'number');
    process.kill(running['pid'] as number, 0); // the pid is a live process
    assert.match(running['start_time'] as string, SCRAPYD_TIME);
    assert.ok(Math.abs(parseScrapydTime(running['start_time'] as string) - Date.now()) < 120_000, `start_time is local now-ish: ${String(running['start_time'])}`);
    assert.equal(running['log_url'], '/logs/demo/slow/slot-1.log');
    assert.equal(running['items_url'], '/items/demo/slow/slot-1.jl');
    assert.equal((await slaveJob('slot-1')).pid, running['pid']);
  });

  test('status.json: pending, running, unknown job, unknown project', async () => {
    const st = async (params: Record<string, string>) => {
      const r = await rawGet(base, '/status.json', params);
      assertApiHeaders(r, 'GET', 'status');
      return r.text;
    };
    assert.equal(await st({ job: defaultId }), '{"currstate": "pending", "status": "ok", "node_name": "testnode"}\n');
    assert.equal(await st({ job: defaultId, project: 'demo' }), '{"currstate": "pending", "status": "ok", "node_name": "testnode"}\n');
    assert.equal(await st({ job: 'slot-1' }), '{"currstate": "running", "status": "ok", "node_name": "testnode"}\n');
    assert.equal(await st({ job: 'no-such-job' }), '{"currstate": null, "status": "ok", "node_name": "testnode"}\n');
    assert.equal(await st({ job: 'slot-1', project: 'gen' }), '{"currstate": null, "status": "ok", "node_name": "testnode"}\n');
    assertError(await rawGet(base, '/status.json', { job: 'x', project: 'nope' }), 'GET', "project 'nope' not found");
    assert.equal((await rawGet(base, '/daemonstatus.json')).text,
      `{"pending": 4, "running": 1, "finished": ${finishedBefore}, "status": "ok", "node_name": "testnode"}\n`);
  });

  test('the /jobs page shows pending and running jobs the way ScrapydWeb parses them', async () => {
    const r = await rawGet(base, '/jobs');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
    const jobs = scrapydwebJobs(r.text);
    const byId = new Map(jobs.map((j) => [j.job, j]));
    assert.equal(byId.get('slot-1')?.status, 'running');
    assert.equal(byId.get('slot-1')?.spider, 'slow');
    assert.equal(byId.get('slot-1')?.log, '/logs/demo/slow/slot-1.log');
    for (const id of ['fixed-1', defaultId, 'cancel-me', 'low']) {
      assert.equal(byId.get(id)?.status, 'pending', `${id} pending on /jobs`);
      assert.equal(byId.get(id)?.project, 'demo');
    }
  });

  test('cancel.json: pending job -> "pending", unknown job -> null, unknown project -> error', async () => {
    const c = await rawPost(base, '/cancel.json', { project: 'demo', job: 'cancel-me' });
    assertApiHeaders(c, 'POST', 'cancel');
    assert.equal(c.text, '{"prevstate": "pending", "status": "ok", "node_name": "testnode"}\n');
    assert.equal((await rawPost(base, '/cancel.json', { project: 'demo', job: 'low' })).text, okBody('"prevstate": "pending"'));
    assert.equal((await rawPost(base, '/cancel.json', { project: 'demo', job: 'no-such-job' })).text, '{"prevstate": null, "status": "ok", "node_name": "testnode"}\n');
    assert.equal((await rawPost(base, '/cancel.json', { project: 'demo', job: 'cancel-me' })).text, okBody('"prevstate": null'));
    assertError(await rawPost(base, '/cancel.json', { project: 'nope', job: 'x' }), 'POST', "project 'nope' not found");
    assert.equal((await rawGet(base, '/status.json', { job: 'cancel-me' })).text, okBody('"currstate": null'));
    const lj = json(await rawGet(base, '/listjobs.json', { project: 'demo' })) as unknown as ListJobs;
    assert.deepEqual(lj.pending.map((j) => j.id), ['fixed-1', defaultId]);
  });

  test('cancel.json of the running job -> "running"; it stops gracefully and the queue moves on', async () => {
    const c = await rawPost(base, '/cancel.json', { project: 'demo', job: 'slot-1' });
    assert.equal(c.text, '{"prevstate": "running", "status": "ok", "node_name": "testnode"}\n');
    const slot = await waitRecorded('slot-1');
    await waitRecorded('fixed-1');
    await waitRecorded(defaultId);
    assert.equal(slot.outcome, 'cancelled');
    const log = await rawGet(base, '/logs/demo/slow/slot-1.log');
    assert.equal(log.status, 200);
    assert.match(log.text, /Received SIGINT, shutting down gracefully/);
  });

  test('listjobs finished entries: exact keys, newest first, log and items urls', async () => {
    const r = await rawGet(base, '/listjobs.json', { project: 'demo' });
    const lj = json(r) as unknown as ListJobs;
    assert.deepEqual(Object.keys(lj), ['pending', 'running', 'finished', 'status', 'node_name']);
    assert.deepEqual(lj.pending, []);
    assert.deepEqual(lj.running, []);
    assert.deepEqual(lj.finished.map((j) => j.id), [defaultId, 'fixed-1', 'slot-1']);
    for (const j of lj.finished) {
      assert.deepEqual(Object.keys(j), ['id', 'project', 'spider', 'start_time', 'end_time', 'log_url', 'items_url']);
      assert.match(j['start_time'] as string, SCRAPYD_TIME);
      assert.match(j['end_time'] as string, SCRAPYD_TIME);
      assert.ok(parseScrapydTime(j['end_time'] as string) >= parseScrapydTime(j['start_time'] as string));
      assert.equal(j['log_url'], `/logs/demo/${j.spider}/${j.id}.log`);
      assert.equal(j['items_url'], `/items/demo/${j.spider}/${j.id}.jl`);
    }
    const ends = lj.finished.map((j) => parseScrapydTime(j['end_time'] as string));
    assert.deepEqual([...ends].sort((a, b) => b - a), ends, 'finished is newest first');
    // Without a project, every project's jobs are listed (the 'ord' job too).
    const all = json(await rawGet(base, '/listjobs.json')) as unknown as ListJobs;
    assert.deepEqual(all.finished.map((j) => j.id), [defaultId, 'fixed-1', 'slot-1', 'ord-newest']);
    assert.equal((await rawGet(base, '/status.json', { job: 'fixed-1' })).text, okBody('"currstate": "finished"'));
    assert.equal((await rawGet(base, '/daemonstatus.json')).text, okBody(`"pending": 0, "running": 0, "finished": ${finishedBefore + 3}`));
  });

  test('/jobs.json: exit_code, outcome, items_count, error_count, duration, versions', async () => {
    const fixed = await slaveJob('fixed-1');
    assert.equal(fixed.state, 'finished');
    assert.equal(fixed.exit_code, 0);
    assert.equal(fixed.outcome, 'succeeded');
    assert.equal(fixed.items_count, 3);
    assert.equal(fixed.error_count, 0);
    assert.equal(fixed.version, 'r1');
    assert.equal(fixed.run_version, 'r1');
    assert.equal(fixed.priority, 5);
    assert.deepEqual(fixed.args, { foo: 'bar' });
    assert.deepEqual(fixed.settings, { MY_SETTING: 'hello', LOG_LEVEL: 'INFO' });
    assert.equal(typeof fixed.duration_seconds, 'number');
    assert.ok(fixed.duration_seconds! > 0 && fixed.duration_seconds! < 60, `duration ${fixed.duration_seconds}`);
    assert.equal(fixed.log_url, '/logs/demo/quick/fixed-1.log');
    assert.equal(fixed.items_url, '/items/demo/quick/fixed-1.jl');
    // No _version: the newest version ran ("r1" is not PEP 440, so string order: r2_0-beta is newest).
    const dflt = await slaveJob(defaultId);
    assert.equal(dflt.version, null);
    assert.equal(dflt.run_version, 'r2_0-beta');
    assert.equal(dflt.items_count, 3);
  });

  test('items and log files: /items/P/S/J.jl and /logs/P/S/J.log', async () => {
    const items = await rawGet(base, '/items/demo/quick/fixed-1.jl');
    assert.equal(items.status, 200);
    const lines = items.text.trimEnd().split('\n').map((l) => JSON.parse(l) as { n: number; body: string; args: Record<string, string>; settings: Record<string, unknown>; env: Record<string, string> });
    assert.deepEqual(lines.map((l) => l.body).sort(), ['quick-1', 'quick-2', 'quick-3']);
    for (const it of lines) {
      assert.equal(it.args['foo'], 'bar', 'extra schedule params reach the spider as -a args');
      assert.equal(it.args['_job'], 'fixed-1');
      assert.equal(it.settings['MY_SETTING'], 'hello', 'setting=K=V reaches Scrapy');
      assert.equal(it.env['SCRAPY_JOB'], 'fixed-1');
      assert.equal(it.env['SCRAPY_PROJECT'], 'demo');
    }
    const log = await rawGet(base, '/logs/demo/quick/fixed-1.log');
    assert.equal(log.status, 200);
    assert.match(log.text, /\[scrapy\.core\.engine\] INFO: Spider closed \(finished\)/);
    assert.match(log.text, /'item_scraped_count': 3/);
  });

  test('LogParser files: /logs/P/S/J.json and /logs/stats.json', async () => {
    const r = await rawGet(base, '/logs/demo/quick/fixed-1.json');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/json');
    const s = json(r);
    assert.equal(s['status'], 'ok');
    assert.equal(s['pages'], 3);
    assert.equal(s['items'], 3);
    assert.equal(s['finish_reason'], 'finished');
    assert.equal(s['shutdown_reason'], 'N/A');
    assert.match(String(s['log_path']), /\/logs\/demo\/quick\/fixed-1\.log$/);
    for (const k of ['head', 'tail', 'first_log_time', 'latest_log_time', 'runtime', 'datas', 'latest_matches', 'log_categories', 'crawler_stats', 'last_update_time', 'logparser_version']) {
      assert.ok(k in s, `LogParser key ${k}`);
    }
    const slot = json(await rawGet(base, '/logs/demo/slow/slot-1.json'));
    assert.equal(slot['finish_reason'], 'shutdown');

    const all = await rawGet(base, '/logs/stats.json');
    assert.equal(all.status, 200);
    const st = json(all) as { status: string; datas: Record<string, Record<string, Record<string, Record<string, unknown>>>>; logparser_version: string };
    assert.equal(st.status, 'ok');
    const entry = st.datas['demo']?.['quick']?.['fixed-1'];
    assert.ok(entry, `stats.json has demo/quick/fixed-1: ${all.text.slice(0, 500)}`);
    assert.equal(entry['pages'], 3);
    assert.equal(entry['items'], 3);
    assert.equal(entry['finish_reason'], 'finished');
    assert.equal(st.datas['demo']?.['slow']?.['slot-1']?.['finish_reason'], 'shutdown');
  });

  test('the /jobs page and /logs/, /items/ listings show finished jobs (ScrapydWeb regexes)', async () => {
    const jobs = scrapydwebJobs((await rawGet(base, '/jobs')).text);
    const fixed = jobs.find((j) => j.job === 'fixed-1');
    assert.ok(fixed, 'fixed-1 on /jobs');
    assert.equal(fixed.status, 'finished');
    assert.equal(fixed.project, 'demo');
    assert.equal(fixed.spider, 'quick');
    assert.equal(fixed.log, '/logs/demo/quick/fixed-1.log');
    assert.equal(fixed.items, '/items/demo/quick/fixed-1.jl');
    assert.match(fixed.start, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);

    const root = await rawGet(base, '/logs/');
    assert.equal(root.status, 200);
    assert.equal(root.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.ok(scrapydwebListing(root.text, '/logs/').some((e) => e.href === 'demo/' && e.name === 'demo/'), root.text);
    const proj = scrapydwebListing((await rawGet(base, '/logs/demo/')).text, '/logs/demo/');
    assert.deepEqual(proj.map((e) => e.name).filter((n) => n === 'quick/' || n === 'slow/').sort(), ['quick/', 'slow/']);
    const quick = scrapydwebListing((await rawGet(base, '/logs/demo/quick/')).text, '/logs/demo/quick/');
    const entry = quick.find((e) => e.name === 'fixed-1.log');
    assert.ok(entry, `fixed-1.log listed: ${JSON.stringify(quick)}`);
    assert.equal(entry.href, 'fixed-1.log');
    assert.match(entry.size, /^\d+(\.\d+)?[BKM]$/);
    const itemsList = scrapydwebListing((await rawGet(base, '/items/demo/quick/')).text, '/items/demo/quick/');
    assert.ok(itemsList.some((e) => e.name === 'fixed-1.jl'), JSON.stringify(itemsList));
  });
});

describe('extensions', () => {
  test('/errors.json after running the broken spider: level, message, Python traceback', async () => {
    assert.equal((await rawPost(base, '/schedule.json', { project: 'demo', spider: 'broken', jobid: 'brk-1' })).text, okBody('"jobid": "brk-1"'));
    // Finished and fully recorded (its errors are stored once the log was read to its end).
    const job = await waitRecorded('brk-1');
    const r = await rawGet(base, '/errors.json', { job: 'brk-1' });
    assertApiHeaders(r, 'GET', 'errors.json');
    const errors = (json(r) as { errors: Array<Record<string, unknown>> }).errors;
    assert.ok(errors.length >= 2, r.text);
    for (const e of errors) {
      assert.deepEqual(Object.keys(e), ['job', 'project', 'spider', 'time', 'level', 'logger', 'message', 'traceback']);
      assert.equal(e['job'], 'brk-1');
      assert.equal(e['project'], 'demo');
      assert.equal(e['spider'], 'broken');
      assert.equal(e['level'], 'ERROR');
    }
    assert.ok(errors.some((e) => e['message'] === 'broken spider is about to fail on purpose'), r.text);
    const spiderError = errors.find((e) => String(e['message']).startsWith('Spider error processing <GET data:,broken>'));
    assert.ok(spiderError, r.text);
    assert.equal(spiderError['logger'], 'scrapy.core.scraper');
    assert.match(String(spiderError['traceback']), /^Traceback \(most recent call last\):\n/);
    assert.match(String(spiderError['traceback']), /RuntimeError: boom from broken spider/);
    // Exit status 0 is kept; the errors in its log make it 'finished with errors', not 'succeeded'.
    assert.equal(job.exit_code, 0);
    assert.equal(job.outcome, 'finished_with_errors');
    assert.match(job.note ?? '', /^finished with errors: \d+ errors logged$/);
    assert.equal(job.items_count, 1);
    assert.equal(job.error_count, errors.length);
    // Filters.
    assert.equal((json(await rawGet(base, '/errors.json', { job: 'fixed-1' })) as { errors: unknown[] }).errors.length, 0);
    assert.ok((json(await rawGet(base, '/errors.json', { project: 'demo', limit: '1' })) as { errors: unknown[] }).errors.length === 1);
  });

  test('/metrics.json: fields and types in the Scrapyd envelope', async () => {
    const r = await rawGet(base, '/metrics.json');
    assertApiHeaders(r, 'GET', 'metrics.json');
    const m = json(r);
    assert.deepEqual(Object.keys(m), ['time', 'cpu_percent', 'cpu_count', 'load', 'memory', 'disks', 'network', 'uptime_seconds', 'daemon_uptime_seconds', 'running', 'pending', 'max_proc', 'event_loop_lag', 'status', 'node_name']);
    assert.ok(m['cpu_percent'] === null || (typeof m['cpu_percent'] === 'number' && m['cpu_percent'] >= 0 && m['cpu_percent'] <= 100));
    assert.ok(typeof m['cpu_count'] === 'number' && m['cpu_count'] >= 1);
    const load = m['load'] as number[];
    assert.equal(load.length, 3);
    for (const l of load) assert.equal(typeof l, 'number');
    const mem = m['memory'] as Record<string, number>;
    assert.deepEqual(Object.keys(mem), ['total_bytes', 'used_bytes', 'available_bytes', 'used_percent']);
    assert.ok(mem['total_bytes']! > 0 && mem['used_bytes']! > 0 && mem['used_bytes']! <= mem['total_bytes']!);
    const disks = m['disks'] as Array<Record<string, unknown>>;
    assert.ok(disks.length >= 1);
    for (const d of disks) assert.deepEqual(Object.keys(d), ['mount', 'size_bytes', 'used_bytes', 'used_percent']);
    assert.deepEqual(Object.keys(m['network'] as object), ['rx_bytes_per_sec', 'tx_bytes_per_sec']);
    assert.ok((m['uptime_seconds'] as number) > 0);
    assert.ok((m['daemon_uptime_seconds'] as number) > 0);
    assert.equal(m['running'], 0);
    assert.equal(m['pending'], 0);
    assert.equal(m['max_proc'], 1);
    const lag = m['event_loop_lag'] as Record<string, number>;
    assert.deepEqual(Object.keys(lag), ['p50_ms', 'p99_ms', 'max_ms', 'window_seconds', 'stalled_ms_total', 'stall_threshold_ms']);
    assert.ok(lag['p50_ms']! >= 0 && lag['p50_ms']! <= lag['p99_ms']! && lag['p99_ms']! <= lag['max_ms']!, JSON.stringify(lag));
    assert.equal(m['status'], 'ok');
    assert.equal(m['node_name'], 'testnode');
  });

  test('/metrics: Prometheus text exposition', async () => {
    const r = await rawGet(base, '/metrics');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    assert.ok(r.text.endsWith('\n'));
    const lines = r.text.trimEnd().split('\n');
    const samples = new Map<string, number>();
    for (const line of lines) {
      if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) {
        assert.match(line, /^# (HELP [a-z0-9_]+ .+|TYPE [a-z0-9_]+ (gauge|counter))$/);
        continue;
      }
      const m = /^([a-z0-9_]+)\{node="testnode"(?:,mount="[^"]*")?\} (-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)$/.exec(line);
      assert.ok(m, `not a sample line: ${line}`);
      samples.set(m[1]!, Number(m[2]));
    }
    assert.equal(samples.get('spiderplane_max_proc'), 1);
    assert.equal(samples.get('spiderplane_jobs_running'), 0);
    assert.equal(samples.get('spiderplane_jobs_pending'), 0);
    assert.ok(samples.get('spiderplane_memory_total_bytes')! > 0);
    assert.ok(samples.has('spiderplane_uptime_seconds'));
    assert.ok(samples.has('spiderplane_load1'));
    assert.ok(samples.has('spiderplane_disk_used_percent'));
    for (const q of ['p50', 'p99', 'max']) assert.ok(samples.get(`spiderplane_event_loop_lag_${q}_seconds`)! >= 0, `event-loop lag ${q}`);
    assert.ok(samples.get('spiderplane_event_loop_stalled_seconds_total')! >= 0);
    // Each metric has its HELP and TYPE.
    for (const name of samples.keys()) {
      assert.ok(lines.includes(`# TYPE ${name} ${name.endsWith('_total') ? 'counter' : 'gauge'}`), `TYPE of ${name}`);
      assert.ok(lines.some((l) => l.startsWith(`# HELP ${name} `)), `HELP of ${name}`);
    }
  });

  test('/jobs.json filters and refuses a bad state', async () => {
    const r = await rawGet(base, '/jobs.json', { project: 'demo', spider: 'quick', state: 'finished' });
    const jobs = (json(r) as { jobs: SlaveJob[] }).jobs;
    assert.deepEqual(jobs.map((j) => j.id).sort(), [defaultIdOf(jobs), 'fixed-1'].sort());
    assertError(await rawGet(base, '/jobs.json', { state: 'bogus' }), 'GET', "state 'bogus' is invalid: use pending, running or finished");
  });
});

function defaultIdOf(jobs: SlaveJob[]): string {
  return jobs.find((j) => /^[0-9a-f]{32}$/.test(j.id))?.id ?? '(no default-id job)';
}

describe('HEAD is not a way to run a POST endpoint', () => {
  // Scrapyd 1.6 lists HEAD among the allowed methods of its POST endpoints, but a HEAD request
  // never reaches render_POST: it must not schedule, cancel or delete anything.
  test('HEAD /schedule.json?project=…&spider=… does not schedule a job', async () => {
    assert.equal((await rawUpload(base, 'headproj', '1', await genericPackage('headproj', { h: 'exit 0' }))).text,
      okBody('"project": "headproj", "version": "1", "spiders": 1'));
    const h = await raw(`${base}/schedule.json?project=headproj&spider=h&jobid=via-head`, { method: 'HEAD' });
    assert.equal(h.status, 200);
    assert.equal(h.text, '');
    assert.equal((await rawGet(base, '/status.json', { job: 'via-head' })).text, okBody('"currstate": null'),
      'a HEAD request scheduled a job');
  });

  test('HEAD /delproject.json?project=… does not delete the project', async () => {
    const h = await raw(`${base}/delproject.json?project=headproj`, { method: 'HEAD' });
    assert.equal(h.status, 200);
    assert.equal((await rawGet(base, '/listversions.json', { project: 'headproj' })).text, okBody('"versions": ["1"]'),
      'a HEAD request deleted the project');
  });
});

describe('deleting', () => {
  test('delversion accepts the unsanitised name; delproject; finished jobs stay listed', async () => {
    // Let any job a HEAD request may have started end first (see the HEAD tests).
    await waitFor('no running job', async () => ((json(await rawGet(base, '/daemonstatus.json'))['running'] === 0) ? true : undefined));
    assert.equal((await rawPost(base, '/delversion.json', { project: 'demo', version: 'r2.0-beta' })).text, '{"status": "ok", "node_name": "testnode"}\n');
    assert.equal((await rawGet(base, '/listversions.json', { project: 'demo' })).text, okBody('"versions": ["r1"]'));
    const d = await rawPost(base, '/delproject.json', { project: 'demo' });
    assertApiHeaders(d, 'POST', 'delproject');
    assert.equal(d.text, '{"status": "ok", "node_name": "testnode"}\n');
    const projects = (json(await rawGet(base, '/listprojects.json')) as { projects: string[] }).projects;
    assert.ok(!projects.includes('demo'), JSON.stringify(projects));
    assertError(await rawPost(base, '/delproject.json', { project: 'demo' }), 'POST', "project 'demo' not found");
    assertError(await rawGet(base, '/listjobs.json', { project: 'demo' }), 'GET', "project 'demo' not found");
    const all = json(await rawGet(base, '/listjobs.json')) as unknown as ListJobs;
    assert.ok(all.finished.some((j) => j.id === 'fixed-1' && j.project === 'demo'), 'finished jobs of a deleted project stay listed');
    assert.equal((await rawGet(base, '/status.json', { job: 'fixed-1' })).text, okBody('"currstate": "finished"'));
  });
});

describe('HTTP auth', () => {
  const basic = (u: string, p: string) => ({ Authorization: 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64') });
  const paths = ['/daemonstatus.json', '/listprojects.json', '/listjobs.json', '/metrics.json', '/jobs', '/logs/', '/items/', '/', '/metrics', '/nosuch.json'];

  test('--username/--password: 401 with WWW-Authenticate on every path without or with wrong credentials', async () => {
    const a = authSlave.url;
    for (const path of paths) {
      for (const headers of [{}, basic('u', 'wrong'), basic('x', 'p'), basic('u', ''), { Authorization: 'Bearer nope' }, { Authorization: 'Basic !!!' }]) {
        const r = await raw(`${a}${path}`, { headers });
        assert.equal(r.status, 401, `${path} ${JSON.stringify(headers)}`);
        assert.equal(r.headers.get('www-authenticate'), 'basic realm="Scrapyd"', path);
      }
    }
    for (const [method, path] of [['POST', '/schedule.json'], ['POST', '/addversion.json'], ['OPTIONS', '/schedule.json'], ['POST', '/delproject.json']]) {
      const r = await raw(`${a}${path}`, { method, body: method === 'POST' ? 'project=x' : undefined, headers: method === 'POST' ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {} });
      assert.equal(r.status, 401, `${method} ${path}`);
      assert.equal(r.headers.get('www-authenticate'), 'basic realm="Scrapyd"');
    }
    // A refused upload stores nothing.
    const up = await rawUpload(a, 'sneaky', '1', nodePkg);
    assert.equal(up.status, 401);
    assert.equal((await rawGet(a, '/listprojects.json', {}, basic('u', 'p'))).text, okBody('"projects": []'));
  });

  test('the right credentials, or the cluster token as a Bearer, are accepted everywhere', async () => {
    const a = authSlave.url;
    for (const headers of [basic('u', 'p'), { Authorization: 'Bearer T' }]) {
      for (const path of paths) {
        const r = await raw(`${a}${path}`, { headers });
        assert.equal(r.status, path === '/nosuch.json' ? 404 : 200, `${path} ${JSON.stringify(headers)}: ${r.text.slice(0, 200)}`);
      }
      assert.equal((await rawGet(a, '/daemonstatus.json', {}, headers)).text, okBody('"pending": 0, "running": 0, "finished": 0'));
    }
    const up = await rawUpload(a, 'authgen', '1', nodePkg, { Authorization: 'Bearer T' });
    assert.equal(up.text, okBody('"project": "authgen", "version": "1", "spiders": 4'));
    assert.equal((await rawGet(a, '/listprojects.json', {}, basic('u', 'p'))).text, okBody('"projects": ["authgen"]'));
  });
});

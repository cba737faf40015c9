// The master's /api against a real master and one real slave: authentication (basic, API tokens,
// the cluster token), roles, the first admin's one-time password, every refusal of bad input, run
// logs, and the spiderplane CLI as real child processes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ADMIN, CLUSTER_TOKEN, basic, startMaster, type MasterHandle } from './helpers/master_process.ts';
import { ROOT, tempDir, waitFor, type SlaveHandle } from './helpers/slave_process.ts';
import { NODE_PACKAGE_DIR, SCRAPY_PROJECT_DIR, buildNodePackage, buildZip } from './helpers/fixtures.ts';
import { FAST_MASTER_ARGS, deployNodePackage, joinSlave, uploadVersion, waitNodeStatus, waitRunState, type RunView } from './helpers/master_slave_pair.ts';
import { rawZip } from './helpers/raw_zip.ts';
import { programArgs } from './helpers/daemon_bundle.ts';

let master: MasterHandle;
let slave: SlaveHandle;
let work: string;
let nodePkg: Buffer;

const VIEWER = { user: 'vera', password: 'viewer-pass-1' };
const OPERATOR = { user: 'otto', password: 'operator-pass-1' };
const asViewer = () => basic(VIEWER.user, VIEWER.password);
const asOperator = () => basic(OPERATOR.user, OPERATOR.password);

/** A request with any headers and raw body; JSON parsed when it is JSON. */
async function raw(method: string, path: string, opts: { headers?: Record<string, string>; body?: string | FormData } = {}) {
  const r = await fetch(master.url + path, { method, headers: opts.headers, body: opts.body });
  const text = await r.text();
  let body: Record<string, unknown> = {};
  try { body = JSON.parse(text) as Record<string, unknown>; } catch { body = { text }; }
  return { status: r.status, headers: r.headers, body, text };
}

async function refused(method: string, path: string, body: unknown, status: number, pattern: RegExp, auth?: string) {
  const r = await master.api<{ error: string }>(method, path, body, auth);
  assert.equal(r.status, status, `${method} ${path} ${JSON.stringify(body)} -> ${JSON.stringify(r.body)}`);
  assert.match(String(r.body.error), pattern, `${method} ${path} ${JSON.stringify(body)}`);
}

before(async () => {
  work = tempDir('spiderplane-mapi-');
  master = await startMaster({ args: FAST_MASTER_ARGS });
  slave = await joinSlave(master, 'n1');
  await deployNodePackage(master, work);
  nodePkg = await readFile(await buildNodePackage(work));
  for (const [u, role] of [[VIEWER, 'viewer'], [OPERATOR, 'operator']] as const) {
    const r = await master.api<{ user: { username: string; role: string } }>('POST', '/api/users', { username: u.user, password: u.password, role });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.user.role, role);
  }
});

after(async () => {
  await master?.api('POST', '/api/runs/stop', { project: 'gen' }).catch(() => undefined);
  await slave?.stop();
  await master?.stop();
  for (const dir of [work, slave?.dataDir, master?.dataDir]) if (dir) await rm(dir, { recursive: true, force: true });
});

// Every /api route (besides /api/cluster/announce), with a body where it takes one.
const ROUTES: Array<[string, string, unknown?]> = [
  ['GET', '/api/status'], ['GET', '/api/nodes'], ['POST', '/api/nodes', { url: 'http://127.0.0.1:9' }], ['GET', '/api/nodes/n1'],
  ['DELETE', '/api/nodes/n1'], ['POST', '/api/nodes/n1/drain', {}], ['GET', '/api/projects'], ['POST', '/api/projects/gen/versions', {}],
  ['POST', '/api/projects/gen/versions/1/deploy'], ['DELETE', '/api/projects/gen/versions/1'], ['DELETE', '/api/projects/gen'],
  ['GET', '/api/deployments'], ['GET', '/api/deployments/1'], ['POST', '/api/runs', { project: 'gen', spider: 'hello' }], ['GET', '/api/runs'],
  ['GET', '/api/runs/abc'], ['POST', '/api/runs/abc/cancel'], ['POST', '/api/runs/stop', { project: 'gen' }], ['GET', '/api/runs/abc/log'],
  ['GET', '/api/schedules'], ['POST', '/api/schedules', { project: 'gen', spider: 'hello', cron: '0 3 * * *' }], ['GET', '/api/schedules/1'],
  ['PUT', '/api/schedules/1', {}], ['DELETE', '/api/schedules/1'], ['POST', '/api/schedules/1/run'], ['POST', '/api/cron/preview', { cron: '0 3 * * *' }],
  ['GET', '/api/me'], ['POST', '/api/tokens', { name: 't' }], ['GET', '/api/users'], ['POST', '/api/users', { username: 'x', password: 'xxxxxxxxxx' }],
  ['PUT', '/api/nodes/n1', { labels: {} }], ['PATCH', '/api/nodes/n1', { labels: {} }],
  ['GET', '/api/services'], ['POST', '/api/services', { project: 'gen', spider: 'hello' }], ['GET', '/api/services/1'], ['PUT', '/api/services/1', {}],
  ['DELETE', '/api/services/1'], ['POST', '/api/services/1/scale', { replicas: 1 }],
];

describe('authentication', () => {
  test('every /api route without credentials is 401 with WWW-Authenticate', async () => {
    for (const [method, path, body] of ROUTES) {
      const r = await raw(method, path, body === undefined ? {} : { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(r.status, 401, `${method} ${path}: ${r.text}`);
      assert.equal(r.headers.get('www-authenticate'), 'Basic realm="spiderplane"', `${method} ${path}`);
      assert.match(String(r.body.error), /authentication required/);
    }
    // Nothing happened: the node and the project are still there.
    assert.equal((await master.api<{ nodes: unknown[] }>('GET', '/api/nodes')).body.nodes.length, 1);
    assert.equal((await master.api<{ projects: unknown[] }>('GET', '/api/projects')).body.projects.length, 1);
  });

  test('a wrong password, an unknown user, or a malformed header is 401', async () => {
    for (const auth of [basic(ADMIN.user, 'wrong-password'), basic('nobody', ADMIN.password), basic(ADMIN.user, ''), 'Basic !!!notbase64', 'Basic ' + Buffer.from('admin').toString('base64'),
      'Bearer spt_not-a-token', 'Bearer ', 'Digest abc', `Bearer ${CLUSTER_TOKEN}x`]) {
      const r = await master.api('GET', '/api/nodes', undefined, auth);
      assert.equal(r.status, 401, `${auth}: ${JSON.stringify(r.body)}`);
    }
  });

  test('an API token from POST /api/tokens works as a Bearer token, with its user role', async () => {
    const made = await master.api<{ token: string }>('POST', '/api/tokens', { name: 'ci' });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    assert.match(made.body.token, /^spt_/);
    const me = await master.api<{ user: { username: string; role: string }; tokens: Array<{ name: string; last_used_at: number | null }> }>('GET', '/api/me', undefined, `Bearer ${made.body.token}`);
    assert.equal(me.status, 200);
    assert.equal(me.body.user.username, 'admin');
    assert.ok(me.body.tokens.some((t) => t.name === 'ci' && t.last_used_at !== null));
    assert.equal((await master.api('GET', '/api/users', undefined, `Bearer ${made.body.token}`)).status, 200);
    // A viewer's token is a viewer.
    const vt = await master.api<{ token: string }>('POST', '/api/tokens', { name: 'viewer-token' }, asViewer());
    assert.equal(vt.status, 201);
    assert.equal((await master.api('GET', '/api/runs', undefined, `Bearer ${vt.body.token}`)).status, 200);
    assert.equal((await master.api('POST', '/api/runs', { project: 'gen', spider: 'hello' }, `Bearer ${vt.body.token}`)).status, 403);
    await refused('POST', '/api/tokens', {}, 400, /'name' is required/);
    await refused('POST', '/api/tokens', { name: 'x'.repeat(101) }, 400, /'name' must be at most 100/);
  });

  test('the cluster token works for /api/cluster/announce only', async () => {
    const cluster = `Bearer ${CLUSTER_TOKEN}`;
    for (const [method, path] of [['GET', '/api/nodes'], ['GET', '/api/status'], ['GET', '/api/runs'], ['GET', '/api/me']] as const) {
      assert.equal((await master.api(method, path, undefined, cluster)).status, 401, `${method} ${path} with the cluster token`);
    }
    // announce: no token -> 401 (a user is not enough), bad url -> 400, a good one -> the node
    const noToken = await raw('POST', '/api/cluster/announce', { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ url: slave.url, name: 'n1' }) });
    assert.equal(noToken.status, 401);
    assert.match(String(noToken.body.error), /cluster token/);
    await refused('POST', '/api/cluster/announce', { url: slave.url, name: 'n1' }, 401, /cluster token/); // admin basic auth
    await refused('POST', '/api/cluster/announce', { url: 'not a url', name: 'zz' }, 400, /./, cluster);
    await refused('POST', '/api/cluster/announce', { url: 'ftp://127.0.0.1:21', name: 'zz' }, 400, /./, cluster);
    await refused('POST', '/api/cluster/announce', { name: 'zz' }, 400, /'url' is required/, cluster);
    await refused('POST', '/api/cluster/announce', { url: 'http://127.0.0.1:9', name: 'bad name!' }, 400, /node name/, cluster);
    await refused('POST', '/api/cluster/announce', { url: 'http://127.0.0.1:9', name: 'zz', max_proc: -1 }, 400, /'max_proc' must be at least 0/, cluster);
    const ok = await master.api<{ node: string; heartbeat_interval_ms: number }>('POST', '/api/cluster/announce', { url: slave.url, name: 'n1', max_proc: 8 }, cluster);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.node, 'n1');
    assert.equal(ok.body.heartbeat_interval_ms, 500);
    assert.equal((await master.api<{ nodes: unknown[] }>('GET', '/api/nodes')).body.nodes.length, 1, 'no node was added by the refused announces');
  });
});

describe('roles', () => {
  test('a viewer reads but cannot change anything (403)', async () => {
    for (const path of ['/api/nodes', '/api/runs', '/api/projects', '/api/schedules', '/api/status', '/api/deployments', '/api/nodes/n1', '/api/me']) {
      const r = await master.api('GET', path, undefined, asViewer());
      assert.equal(r.status, 200, `viewer GET ${path}: ${JSON.stringify(r.body)}`);
    }
    const forbidden: Array<[string, string, unknown?]> = [
      ['POST', '/api/runs', { project: 'gen', spider: 'hello' }], ['POST', '/api/schedules', { project: 'gen', spider: 'hello', cron: '0 3 * * *' }],
      ['POST', '/api/nodes/n1/drain', { draining: true }], ['POST', '/api/runs/stop', { project: 'gen' }], ['POST', '/api/projects/gen/versions/1/deploy'],
      ['DELETE', '/api/projects/gen/versions/1'], ['DELETE', '/api/projects/gen'], ['POST', '/api/nodes', { url: 'http://127.0.0.1:9' }],
      ['DELETE', '/api/nodes/n1'], ['GET', '/api/users'], ['POST', '/api/users', { username: 'x', password: 'xxxxxxxxxx' }],
      ['PUT', '/api/schedules/1', {}], ['DELETE', '/api/schedules/1'], ['POST', '/api/schedules/1/run'], ['POST', '/api/runs/abc/cancel'],
    ];
    for (const [method, path, body] of forbidden) {
      const r = await master.api<{ error: string }>(method, path, body, asViewer());
      assert.equal(r.status, 403, `viewer ${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error, /this needs the (operator|admin) role; 'vera' is viewer/);
    }
    const up = await uploadVersion(master, 'gen', '77', nodePkg, { auth: asViewer() });
    assert.equal(up.status, 403, JSON.stringify(up.body));
    const node = (await master.api<{ nodes: Array<{ draining: boolean }> }>('GET', '/api/nodes')).body.nodes[0]!;
    assert.equal(node.draining, false, 'the viewer did not drain n1');
    assert.ok(!(await master.api<{ projects: Array<{ versions: Array<{ version: string }> }> }>('GET', '/api/projects')).body.projects[0]!.versions.some((v) => v.version === '77'));
  });

  test('an operator runs and uploads but cannot add nodes or users (403)', async () => {
    const run = await master.api<{ runs: RunView[] }>('POST', '/api/runs', { project: 'gen', spider: 'hello' }, asOperator());
    assert.equal(run.status, 201, JSON.stringify(run.body));
    assert.equal(run.body.runs[0]!.created_by, 'otto');
    const up = await uploadVersion(master, 'opproj', '1', nodePkg, { auth: asOperator() });
    assert.equal(up.status, 201, JSON.stringify(up.body));
    const drain = await master.api<{ node: { draining: boolean } }>('POST', '/api/nodes/n1/drain', { draining: false }, asOperator());
    assert.equal(drain.status, 200);
    for (const [method, path, body] of [['POST', '/api/nodes', { url: 'http://127.0.0.1:9', name: 'x9' }], ['DELETE', '/api/nodes/n1'],
      ['POST', '/api/users', { username: 'mallory', password: 'mallory-pass', role: 'admin' }], ['GET', '/api/users']] as Array<[string, string, unknown?]>) {
      const r = await master.api<{ error: string }>(method, path, body, asOperator());
      assert.equal(r.status, 403, `operator ${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error, /needs the admin role; 'otto' is operator/);
    }
    const users = await master.api<{ users: Array<{ username: string }> }>('GET', '/api/users');
    assert.deepEqual(users.body.users.map((u) => u.username).sort(), ['admin', 'otto', 'vera']);
    assert.equal((await master.api<{ nodes: unknown[] }>('GET', '/api/nodes')).body.nodes.length, 1);
    await waitRunState(master, run.body.runs[0]!.job, (r) => r.state === 'finished', 'to finish');
    assert.equal((await master.api('DELETE', '/api/projects/opproj')).status, 200);
  });

  test('bad user input is 400: short or long password, bad username, bad role, duplicate', async () => {
    await refused('POST', '/api/users', { username: 'newbie', password: 'short' }, 400, /at least 8 characters/);
    await refused('POST', '/api/users', { username: 'newbie', password: 'x'.repeat(73) }, 400, /at most 72/);
    await refused('POST', '/api/users', { username: 'bad name!', password: 'long-enough-1' }, 400, /username has 1 to 64 letters/);
    await refused('POST', '/api/users', { username: 'x'.repeat(65), password: 'long-enough-1' }, 400, /'username' must be at most 64/);
    await refused('POST', '/api/users', { username: 'newbie', password: 'long-enough-1', role: 'root' }, 400, /'role' must be one of admin, operator, viewer/);
    await refused('POST', '/api/users', { username: 'vera', password: 'long-enough-1' }, 400, /user 'vera' already exists/);
    await refused('POST', '/api/users', { password: 'long-enough-1' }, 400, /'username' is required/);
    await refused('POST', '/api/users', { username: 'newbie' }, 400, /'password' is required/);
    await refused('POST', '/api/users', { username: 'newbie', password: 12345678 }, 400, /'password' must be a string/);
    const users = await master.api<{ users: Array<{ username: string }> }>('GET', '/api/users');
    assert.ok(!users.body.users.some((u) => u.username === 'newbie'));
  });
});

/** Starts a master the way a first-time user does: no --admin-user, no --admin-password. */
async function startBareMaster(dataDir: string): Promise<string> {
  const proc = spawn(process.execPath, [...await programArgs('run_master.ts'), '--port', '0', '--data-dir', dataDir, '--cluster-token', CLUSTER_TOKEN], {
    cwd: ROOT, env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SPIDERPLANE_'))), stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  try {
    const url = await waitFor('the bare master to listen', () => /listening on (http:\/\/\S+)/.exec(out)?.[1], 90_000, 50);
    return `${url}\n${out}`;
  } finally {
    proc.kill('SIGTERM');
    assert.equal(await exited, 0, out);
  }
}

describe('first start', () => {
  test('without --admin-password a random password is printed once; a second start prints none', async () => {
    const dir = tempDir('spiderplane-bare-');
    try {
      const first = await startBareMaster(dir);
      const m = /created the first admin: user 'admin', password '([^']+)' \(shown once/.exec(first);
      assert.ok(m, first);
      const password = m[1]!;
      assert.ok(password.length >= 12, password);
      assert.equal(first.split(password).length - 1, 1, 'the password is printed exactly once');
      const second = await startBareMaster(dir);
      assert.doesNotMatch(second, /created the first admin/);
      assert.doesNotMatch(second, /password/);
      assert.ok(!second.includes(password));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('bad input', () => {
  test('POST /api/runs refuses missing, unsafe and unknown names, bad targets and fields', async () => {
    const before = (await master.api<{ total: number }>('GET', '/api/runs')).body.total;
    const ok = { project: 'gen', spider: 'hello' };
    await refused('POST', '/api/runs', { spider: 'hello' }, 400, /'project' is required/);
    await refused('POST', '/api/runs', { project: 'gen' }, 400, /'spider' is required/);
    await refused('POST', '/api/runs', { project: '', spider: 'hello' }, 400, /'project' is required/);
    await refused('POST', '/api/runs', { project: 'gen', spider: 'a/b' }, 400, /'spider' must not contain '\/'/);
    await refused('POST', '/api/runs', { project: '..', spider: 'hello' }, 400, /'project' must not be '\.' or contain '\.\.'/);
    await refused('POST', '/api/runs', { project: 'gen/../x', spider: 'hello' }, 400, /'project' must not contain/);
    await refused('POST', '/api/runs', { ...ok, version: '../1' }, 400, /'version' must not contain/);
    await refused('POST', '/api/runs', { project: 'gen', spider: '-rf' }, 400, /'spider' must not start with '-'/);
    await refused('POST', '/api/runs', { project: 7, spider: 'hello' }, 400, /'project' must be a string/);
    await refused('POST', '/api/runs', { project: 'nope', spider: 'hello' }, 400, /project 'nope' not found/);
    await refused('POST', '/api/runs', { project: 'gen', spider: 'nope' }, 400, /spider 'nope' not found/);
    await refused('POST', '/api/runs', { ...ok, version: '42' }, 400, /version '42' not found/);
    await refused('POST', '/api/runs', { ...ok, target: 'everywhere' }, 400, /'target' must be "auto", "all"/);
    await refused('POST', '/api/runs', { ...ok, target: ['n1'] }, 400, /'target' must be/);
    await refused('POST', '/api/runs', { ...ok, target: 3 }, 400, /'target' must be/);
    await refused('POST', '/api/runs', { ...ok, target: { mode: 'some' } }, 400, /'mode' must be one of auto, node, nodes, all/);
    await refused('POST', '/api/runs', { ...ok, target: { mode: 'node' } }, 400, /'node' is required/);
    await refused('POST', '/api/runs', { ...ok, target: { mode: 'nodes', count: 0 } }, 400, /'count' must be at least 1/);
    await refused('POST', '/api/runs', { ...ok, target: { mode: 'nodes', count: '2' } }, 400, /'count' must be an integer/);
    await refused('POST', '/api/runs', { ...ok, target: { mode: 'node', node: 'ghost' } }, 400, /node 'ghost' not found/);
    await refused('POST', '/api/runs', { ...ok, target: { mode: 'nodes', count: 2 } }, 400, /cannot dispatch to 2 nodes: only 1 eligible/);
    await refused('POST', '/api/runs', { ...ok, args: ['x'] }, 400, /'args' must be an object of strings/);
    await refused('POST', '/api/runs', { ...ok, args: { a: [1] } }, 400, /'args\.a' must be a string/);
    await refused('POST', '/api/runs', { ...ok, settings: 'LOG_LEVEL=INFO' }, 400, /'settings' must be an object of strings/);
    await refused('POST', '/api/runs', { ...ok, priority: 'urgent' }, 400, /'priority' must be a number/);
    await refused('POST', '/api/runs', { ...ok, max_retries: -1 }, 400, /'max_retries' must be at least 0/);
    const notJson = await raw('POST', '/api/runs', { headers: { Authorization: basic(ADMIN.user, ADMIN.password), 'Content-Type': 'application/json' }, body: '{"project":' });
    assert.equal(notJson.status, 400);
    assert.match(String(notJson.body.error), /not valid JSON/);
    const form = await raw('POST', '/api/runs', { headers: { Authorization: basic(ADMIN.user, ADMIN.password), 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'project=gen&spider=hello' });
    assert.equal(form.status, 415);
    assert.match(String(form.body.error), /Content-Type: application\/json/);
    await refused('POST', '/api/runs/stop', {}, 400, /'project' is required/);
    await refused('POST', '/api/runs/stop', { project: 'gen', spider: '../x' }, 400, /'spider' must not contain/);
    assert.equal((await master.api<{ total: number }>('GET', '/api/runs')).body.total, before, 'no run was recorded');
  });

  test('POST /api/runs to an offline node is refused with the reason', async () => {
    const add = await master.api<{ node: { name: string; status: string } }>('POST', '/api/nodes', { url: 'http://127.0.0.1:9', name: 'deadnode' });
    assert.equal(add.status, 201, JSON.stringify(add.body));
    await refused('POST', '/api/nodes', { url: 'http://127.0.0.1:9', name: 'other' }, 400, /already registered/);
    await refused('POST', '/api/nodes', { url: 'http://127.0.0.1:10', name: 'deadnode' }, 400, /already exists/);
    await refused('POST', '/api/nodes', { url: 'nonsense' }, 400, /./);
    await refused('POST', '/api/nodes', { url: 'http://127.0.0.1:11', username: 'u' }, 400, /both username and password/);
    await waitNodeStatus(master, 'deadnode', 'offline');
    await refused('POST', '/api/runs', { project: 'gen', spider: 'hello', target: { mode: 'node', node: 'deadnode' } }, 400, /cannot dispatch to node 'deadnode': it is offline/);
    assert.equal((await master.api('DELETE', '/api/nodes/deadnode')).status, 200);
    assert.equal((await master.api('DELETE', '/api/nodes/deadnode')).status, 404);
  });

  test('uploads refuse a missing version or file, non-zips, zip-slip and bad project names', async () => {
    const up = (project: string, version: string | null, data: Buffer | null, field?: string) => uploadVersion(master, project, version, data, { field });
    const expect400 = async (p: Promise<{ status: number; body: Record<string, unknown> }>, pattern: RegExp) => {
      const r = await p;
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(String(r.body.error), pattern);
    };
    await expect400(up('gen', null, nodePkg), /'version' is required/);
    await expect400(up('gen', '', nodePkg), /'version' is required/);
    await expect400(up('gen', '3', null), /multipart file field 'egg'/);
    await expect400(up('gen', '3', nodePkg, 'file'), /multipart file field 'egg'/);
    await expect400(up('gen', '3', Buffer.from('this is not a zip')), /egg is not a ZIP file/);
    const slip = rawZip([
      { name: 'spiderplane.json', content: JSON.stringify({ spiders: { s: { command: ['node', 's.js'] } } }) },
      { name: '../evil.txt', content: 'pwned' },
    ]);
    await expect400(up('gen', '3', slip), /'\.\.\/evil\.txt' escapes the package folder/);
    await expect400(up('gen', '3', rawZip([{ name: 'x/../../evil2', content: 'pwned' }])), /escapes the package folder/);
    const noManifest = readFileSync(await buildZip(join(work, 'plain.zip'), { 'readme.txt': 'hi' }));
    await expect400(up('gen', '3', noManifest), /no Scrapy entry point/);
    await expect400(up('gen', '3', readFileSync(await buildZip(join(work, 'badmanifest.zip'), { 'spiderplane.json': '{"spiders": 5' }))), /./);
    await expect400(up('a/b', '3', nodePkg), /project 'a\/b' must not contain/);
    await expect400(up('x..y', '3', nodePkg), /project 'x\.\.y' must not be/);
    await expect400(up('-rf', '3', nodePkg), /project '-rf' must not start with '-'/);
    const versions = (await master.api<{ projects: Array<{ project: string; versions: Array<{ version: string }> }> }>('GET', '/api/projects')).body.projects;
    assert.deepEqual(versions.map((p) => p.project), ['gen']);
    assert.deepEqual(versions[0]!.versions.map((v) => v.version), ['1']);
    // nothing escaped into the master's data dir
    assert.ok(!readdirSync(master.dataDir).includes('evil.txt'));
    assert.ok(!readdirSync(join(master.dataDir, 'packages')).includes('evil.txt'));
  });

  test('deploying or deleting unknown versions and projects is 404', async () => {
    await refused('POST', '/api/projects/gen/versions/99/deploy', undefined, 404, /version '99' of project 'gen' not found/);
    await refused('POST', '/api/projects/nope/versions/1/deploy', undefined, 404, /not found/);
    await refused('DELETE', '/api/projects/gen/versions/99', undefined, 404, /version '99' of project 'gen' not found/);
    await refused('DELETE', '/api/projects/nope', undefined, 404, /project 'nope' not found/);
    await refused('GET', '/api/deployments/999999', undefined, 404, /not found/);
    const redeploy = await master.api<{ deployment: { targets: Array<{ node: string; state: string }> } }>('POST', '/api/projects/gen/versions/1/deploy?wait=1');
    assert.equal(redeploy.status, 200, JSON.stringify(redeploy.body));
    assert.deepEqual(redeploy.body.deployment.targets.map((t) => [t.node, t.state]), [['n1', 'ok']]);
  });

  test('GET /api/runs refuses bad queries; unknown runs and nodes are 404', async () => {
    await refused('GET', '/api/runs?state=bogus', undefined, 400, /query 'state' must be one of/);
    await refused('GET', '/api/runs?limit=-1', undefined, 400, /query 'limit' must be an integer from 0 to 1000/);
    await refused('GET', '/api/runs?limit=abc', undefined, 400, /query 'limit'/);
    await refused('GET', '/api/runs?limit=1001', undefined, 400, /query 'limit'/);
    await refused('GET', '/api/runs?limit=1.5', undefined, 400, /query 'limit'/);
    await refused('GET', '/api/runs?offset=-5', undefined, 400, /query 'offset'/);
    await refused('GET', '/api/runs?since=yesterday', undefined, 400, /query 'since'/);
    await refused('GET', '/api/runs?state=running&state=finished', undefined, 400, /query 'state' must be given once/);
    for (const state of ['active', 'pending', 'running', 'finished', 'lost', 'failed', 'dispatching']) {
      assert.equal((await master.api('GET', `/api/runs?state=${state}`)).status, 200, state);
    }
    await refused('GET', '/api/runs/0123456789abcdef0123456789abcdef', undefined, 404, /run '0123456789abcdef0123456789abcdef' not found/);
    await refused('POST', '/api/runs/0123456789abcdef0123456789abcdef/cancel', undefined, 404, /not found/);
    const log = await raw('GET', '/api/runs/0123456789abcdef0123456789abcdef/log', { headers: { Authorization: basic(ADMIN.user, ADMIN.password) } });
    assert.equal(log.status, 404);
    await refused('POST', '/api/nodes/ghost/drain', { draining: true }, 404, /node 'ghost' not found/);
    await refused('GET', '/api/nodes/ghost', undefined, 404, /node 'ghost' not found/);
    await refused('DELETE', '/api/nodes/ghost', undefined, 404, /node 'ghost' not found/);
    await refused('POST', '/api/nodes/n1/drain', { draining: 'yes' }, 400, /'draining' must be true or false/);
    await refused('GET', '/api/nodes/n1?since=-1', undefined, 400, /query 'since'/);
    await refused('GET', '/api/deployments?limit=-1', undefined, 400, /query 'limit'/);
  });

  test('GET /api/runs?schedule= with a non-number is refused like every other bad query', async () => {
    // schedule=abc becomes Number('abc') = NaN, bound as NULL: a silent empty 200 instead of a 400.
    await refused('GET', '/api/runs?schedule=abc', undefined, 400, /query 'schedule'/);
  });
});

describe('run logs', () => {
  test("GET /api/runs/:job/log returns the spider's log text; ?tail= cuts it", async () => {
    const r = await master.api<{ runs: RunView[] }>('POST', '/api/runs', { project: 'gen', spider: 'hello', args: { foo: 'bar' } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const job = r.body.runs[0]!.job;
    const run = await waitRunState(master, job, (x) => x.state === 'finished', 'to finish');
    assert.equal(run.outcome, 'succeeded');
    assert.deepEqual(run.args, { foo: 'bar' });
    const log = await raw('GET', `/api/runs/${job}/log`, { headers: { Authorization: basic(ADMIN.user, ADMIN.password) } });
    assert.equal(log.status, 200, log.text);
    assert.match(log.headers.get('content-type') ?? '', /^text\/plain/);
    assert.ok(log.text.includes(`hello spider starting, job ${job}`), log.text);
    assert.ok(log.text.includes('hello spider wrote 2 items'), log.text);
    const tail = await raw('GET', `/api/runs/${job}/log?tail=20`, { headers: { Authorization: asViewer() } });
    assert.equal(tail.status, 200);
    assert.equal(tail.text, log.text.slice(-20));
    const anon = await raw('GET', `/api/runs/${job}/log`);
    assert.equal(anon.status, 401);
  });
});

// ---- CLI ----

interface CliResult { code: number | null; stdout: string; stderr: string }

/** The CLI's test bundle (daemon_bundle.ts), or with `bin` the installed command bin/spiderplane.mjs (through tsx). */
async function cli(args: string[], env: Record<string, string> = { SPIDERPLANE_URL: master.url, SPIDERPLANE_USER: ADMIN.user, SPIDERPLANE_PASSWORD: ADMIN.password }, bin = false): Promise<CliResult> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SPIDERPLANE_'))) as Record<string, string>;
  const program = bin ? [join(ROOT, 'bin', 'spiderplane.mjs')] : await programArgs('cli/main.ts');
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...program, ...args], { cwd: ROOT, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`spiderplane ${args.join(' ')} timed out:\n${stdout}\n${stderr}`)); }, 120_000);
    p.once('error', reject);
    p.once('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

/** Relative path -> sha256 (or 'dir') of everything under dir. */
function snapshot(dir: string, prefix = ''): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    const rel = prefix ? `${prefix}/${name}` : name;
    if (statSync(full).isDirectory()) {
      out.set(rel, 'dir');
      for (const [k, v] of snapshot(full, rel)) out.set(k, v);
    } else {
      out.set(rel, createHash('sha256').update(readFileSync(full)).digest('hex'));
    }
  }
  return out;
}

describe('CLI', () => {
  test('deploy a Node package folder and a Scrapy project (the project folder is left as it was)', async () => {
    const gen = await cli(['deploy', NODE_PACKAGE_DIR, '--project', 'gen', '--version', '2']);
    assert.equal(gen.code, 0, gen.stderr + gen.stdout);
    assert.match(gen.stdout, /deployed gen 2 \(generic, \d+ bytes\)/);
    assert.match(gen.stdout, /n1\s+ok\s+4/);

    const before = snapshot(SCRAPY_PROJECT_DIR);
    const demo = await cli(['deploy', SCRAPY_PROJECT_DIR, '--version', '5']);
    assert.equal(demo.code, 0, demo.stderr + demo.stdout);
    assert.match(demo.stdout, /deployed demo 5 \(scrapy-egg, \d+ bytes\)/);
    assert.match(demo.stdout, /n1\s+ok/);
    const after = snapshot(SCRAPY_PROJECT_DIR);
    assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), 'no file was added to or removed from test/fixtures/scrapy_project');
    for (const [k, v] of before) assert.equal(after.get(k), v, `${k} is unchanged`);
    assert.ok(![...after.keys()].some((k) => /(^|\/)(build|dist)$|\.egg-info/.test(k)));

    const projects = (await master.api<{ projects: Array<{ project: string; versions: Array<{ version: string; kind: string; nodes: string[]; uploaded_by: string }> }> }>('GET', '/api/projects')).body.projects;
    const g = projects.find((p) => p.project === 'gen')!;
    assert.deepEqual(g.versions.map((v) => v.version).sort(), ['1', '2']);
    assert.equal(g.versions.find((v) => v.version === '2')!.uploaded_by, 'admin');
    const d = projects.find((p) => p.project === 'demo');
    assert.ok(d, JSON.stringify(projects));
    assert.deepEqual(d.versions.map((v) => [v.version, v.kind, v.nodes]), [['5', 'scrapy-egg', ['n1']]]);
  });

  test('deploy of a Scrapy project without setup.py: the generated setup.py and its build files are removed again', async () => {
    const dir = join(work, 'nosetup');
    cpSync(SCRAPY_PROJECT_DIR, dir, { recursive: true, filter: (p) => !/__pycache__|\.egg-info|(^|\/)build$/.test(p) });
    rmSync(join(dir, 'setup.py'));
    const before = snapshot(dir);
    const r = await cli(['deploy', dir, '--version', '6']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /deployed demo 6 \(scrapy-egg/);
    assert.deepEqual([...snapshot(dir).keys()].sort(), [...before.keys()].sort());
  });

  test('deploy of a Scrapy project keeps its own build/ folder and leaves no <name>.egg-info behind', async () => {
    // A project whose setup.py names the distribution after itself (not scrapyd-deploy's 'project')
    // and that has a build/ folder of its own before the deploy.
    const dir = join(work, 'ownsetup');
    cpSync(SCRAPY_PROJECT_DIR, dir, { recursive: true, filter: (p) => !/__pycache__|\.egg-info|(^|\/)build$/.test(p) });
    writeFileSync(join(dir, 'setup.py'), readFileSync(join(dir, 'setup.py'), 'utf8').replace(/name\s*=\s*'project'/, "name='mydemo'"));
    mkdirSync(join(dir, 'build'));
    writeFileSync(join(dir, 'build', 'notes.txt'), 'the user\'s own file');
    const before = snapshot(dir);
    const r = await cli(['deploy', dir, '--version', '7']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const after = snapshot(dir);
    assert.ok(after.has('build/notes.txt'), `the project's own build/notes.txt was deleted by the deploy: ${[...after.keys()].join(', ')}`);
    assert.deepEqual([...after.keys()].filter((k) => k.includes('.egg-info')), [], 'no mydemo.egg-info is left in the project');
    assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort());
  });

  test('run, jobs, logs, nodes, schedule, schedules, cancel', async () => {
    const run = await cli(['run', 'gen', 'hello', '-a', 'foo=bar']);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    const job = /\b([0-9a-f]{32})\s+n1\b/.exec(run.stdout)?.[1];
    assert.ok(job, run.stdout);
    const done = await waitRunState(master, job, (r) => r.state === 'finished', 'to finish');
    assert.deepEqual(done.args, { foo: 'bar' });
    assert.equal(done.version, '2', 'the newest version ran');

    const jobs = await cli(['jobs']);
    assert.equal(jobs.code, 0, jobs.stderr);
    assert.match(jobs.stdout, /^JOB\s+PROJECT\s+SPIDER\s+NODE\s+STATE/m);
    assert.match(jobs.stdout, new RegExp(`${job}\\s+gen\\s+hello\\s+n1\\s+finished`));
    const jobsJson = await cli(['jobs', '--json', '--spider', 'hello', '--limit', '1']);
    assert.equal(jobsJson.code, 0, jobsJson.stderr);
    assert.equal((JSON.parse(jobsJson.stdout) as { runs: RunView[] }).runs[0]!.job, job);

    const logs = await cli(['logs', job]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.ok(logs.stdout.includes(`hello spider starting, job ${job}`), logs.stdout);
    assert.ok(logs.stdout.includes('hello spider wrote 2 items'), logs.stdout);

    const nodes = await cli(['nodes']);
    assert.equal(nodes.code, 0, nodes.stderr);
    assert.match(nodes.stdout, new RegExp(`^n1\\s+${slave.url.replace(/[.]/g, '\\.')}\\s+online\\s+false`, 'm'));

    const sched = await cli(['schedule', 'gen', 'hello', '--cron', '0 3 * * *', '--name', 'cli-nightly']);
    assert.equal(sched.code, 0, sched.stderr);
    const sid = /schedule (\d+) 'cli-nightly' created; next runs:/.exec(sched.stdout)?.[1];
    assert.ok(sid, sched.stdout);
    assert.equal(sched.stdout.trim().split('\n').length, 6, `five next runs: ${sched.stdout}`);
    const schedules = await cli(['schedules']);
    assert.equal(schedules.code, 0, schedules.stderr);
    assert.match(schedules.stdout, new RegExp(`^${sid}\\s+cli-nightly\\s+0 3 \\* \\* \\*\\s+-\\s+gen\\s+hello\\s+true`, 'm'));

    const long = await cli(['run', 'gen', 'count', '-a', 'n=1000000', '-a', 'interval_ms=50', '--target', 'node:n1']); // runs until cancelled
    assert.equal(long.code, 0, long.stderr);
    const longJob = /\b([0-9a-f]{32})\s+n1\b/.exec(long.stdout)?.[1];
    assert.ok(longJob, long.stdout);
    await waitRunState(master, longJob, (r) => r.state === 'running', 'to run');
    const cancel = await cli(['cancel', longJob]);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.match(cancel.stdout, new RegExp(`cancelled ${longJob} \\(was running\\)`));
    const ended = await waitRunState(master, longJob, (r) => r.state === 'finished', 'to end after the cancel');
    assert.equal(ended.cancel_requested, true);

    const unknown = await cli(['cancel', '0123456789abcdef0123456789abcdef']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /HTTP 404: run '0123456789abcdef0123456789abcdef' not found/);
    assert.equal((await master.api('DELETE', `/api/schedules/${sid}`)).status, 200);
  });

  test('a bad cron exits 1 with croner\'s reason; no or wrong credentials exit 1 with a clear message', async () => {
    const count = (await master.api<{ schedules: unknown[] }>('GET', '/api/schedules')).body.schedules.length;
    const bad = await cli(['schedule', 'gen', 'hello', '--cron', '61 * * * *'], undefined, true); // the exit status passes through bin/spiderplane.mjs
    assert.equal(bad.code, 1, bad.stdout + bad.stderr);
    assert.match(bad.stderr, /spiderplane: POST \/api\/schedules: HTTP 400: CronPattern: Invalid value for minute: 61/);
    const four = await cli(['schedule', 'gen', 'hello', '--cron', '* * * *']);
    assert.equal(four.code, 1);
    assert.match(four.stderr, /CronPattern/);
    assert.equal((await master.api<{ schedules: unknown[] }>('GET', '/api/schedules')).body.schedules.length, count);

    const wrong = await cli(['nodes'], { SPIDERPLANE_URL: master.url, SPIDERPLANE_USER: ADMIN.user, SPIDERPLANE_PASSWORD: 'wrong-password' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /GET \/api\/nodes: HTTP 401: authentication required/);
    const token = (await master.api<{ token: string }>('POST', '/api/tokens', { name: 'cli' })).body.token;
    const withToken = await cli(['nodes', '--json'], { SPIDERPLANE_URL: master.url, SPIDERPLANE_TOKEN: token });
    assert.equal(withToken.code, 0, withToken.stderr);
    assert.equal((JSON.parse(withToken.stdout) as { nodes: Array<{ name: string }> }).nodes[0]!.name, 'n1');
    const viewerRun = await cli(['run', 'gen', 'hello'], { SPIDERPLANE_URL: master.url, SPIDERPLANE_USER: VIEWER.user, SPIDERPLANE_PASSWORD: VIEWER.password });
    assert.equal(viewerRun.code, 1);
    assert.match(viewerRun.stderr, /HTTP 403: this needs the operator role/);
  });

  test('no credentials: exit 1 with a message that says to give credentials (not that the master is unreachable)', async () => {
    const none = await cli(['nodes'], { SPIDERPLANE_URL: master.url });
    assert.equal(none.code, 1);
    assert.equal(none.stdout, '');
    assert.match(none.stderr, /give credentials: --token \(or SPIDERPLANE_TOKEN\), or --user and --password/);
    // The master is up; saying it cannot be reached sends the user looking for the wrong problem.
    assert.doesNotMatch(none.stderr, /cannot reach the master/);
    assert.match(none.stderr, /^spiderplane: give credentials/);
  });
});

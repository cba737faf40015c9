// Per-project dependencies (issue 10), with real pip and real npm, offline: a slave started with
// PIP_NO_INDEX=1 PIP_FIND_LINKS=<wheelhouse> builds each version's environment at deploy.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { getJson, postForm, startSlave, tempDir, uploadEgg, waitFor, type Json, type SlaveHandle } from './helpers/slave_process.ts';
import { schedule, waitFinished, hardKill9 } from './helpers/runner_checks.ts';
import { buildDepsEgg, buildWheelhouse, genericPythonPackage, nodePackageWithLockfile, serveWheelhouse, type GatedWheelhouse } from './helpers/deps_fixtures.ts';
import { startMaster, CLUSTER_TOKEN, type MasterHandle } from './helpers/master_process.ts';
import { FAST_MASTER_ARGS, uploadVersion, waitNodeStatus } from './helpers/master_slave_pair.ts';

// The spawned pass (test/spawned/deps.test.ts) runs only what starts Scrapy spiders, the one thing the
// forkserver changes; building, sharing and removing environments are the same both ways.
const spawnedPass = process.env.SPIDERPLANE_TEST_FORKSERVER === '0';
const notSpiderPath = { skip: spawnedPass && 'no Scrapy spider runs here: the forkserver pass covers it' };

interface EnvJson { key: string; kind: string; requirements: string[]; size: number; versions: Array<{ project: string; version: string }>; built_at: number; last_used: number | null; log_url: string }

let work: string;
let wheelhouse: string;
let pipEnv: Record<string, string>;

async function envs(url: string): Promise<EnvJson[]> {
  const j = await getJson(url, '/envs.json');
  assert.equal(j.status, 'ok', JSON.stringify(j));
  return j.envs as EnvJson[];
}

function items(h: SlaveHandle, project: string, spider: string, job: string): Array<Record<string, unknown>> {
  const file = join(h.dataDir, 'items', project, spider, `${job}.jl`);
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function runOnce(h: SlaveHandle, project: string, spider: string, version?: string): Promise<Array<Record<string, unknown>>> {
  const pairs: Array<[string, string]> = [['project', project], ['spider', spider]];
  if (version) pairs.push(['_version', version]);
  const id = await schedule(h.url, pairs);
  const rec = await waitFinished(h.url, id, { timeoutMs: 120_000 });
  assert.equal(rec.outcome, 'succeeded', `${project}/${spider}: ${JSON.stringify(rec)}\n${readFileSync(join(h.dataDir, 'logs', project, spider, `${id}.log`), 'utf8').slice(-3000)}`);
  return items(h, project, spider, id);
}

async function upload(h: SlaveHandle, project: string, version: string, data: Buffer): Promise<Json> {
  return uploadEgg(h.url, project, version, data);
}

function ok(j: Json, what: string): Json {
  assert.equal(j.status, 'ok', `${what}: ${JSON.stringify(j)}`);
  return j;
}

before(async () => {
  work = tempDir('spiderplane-deps-');
  wheelhouse = await buildWheelhouse(work, ['1.0', '2.0']);
  // pip's own settings, nothing spiderplane-specific: they reach the build through the allow-list.
  // npm's cache: its own folder the spiders' user may write (npx gives this process root's ~/.npm).
  const npmCache = join(work, 'npm-cache-slave');
  mkdirSync(npmCache);
  chmodSync(npmCache, 0o777);
  pipEnv = { PIP_NO_INDEX: '1', PIP_FIND_LINKS: wheelhouse, npm_config_cache: npmCache, npm_config_offline: 'true' };
});

describe('eggs with requirements', () => {
  let h: SlaveHandle;
  let eggV1: Buffer;
  let eggV2: Buffer;
  before(async () => {
    eggV1 = await buildDepsEgg(work, { installRequires: ['tinylib==1.0'] });
    eggV2 = await buildDepsEgg(work, { requirementsTxt: '# pinned\ntinylib==2.0\n' });
    h = await startSlave({ env: pipEnv });
  });
  after(async () => { await h?.stop(); });

  test('two eggs pinning different versions of a library each run with their own', async () => {
    ok(await upload(h, 'one', 'v1', eggV1), 'deploy one (install_requires tinylib==1.0)');
    ok(await upload(h, 'two', 'v1', eggV2), 'deploy two (requirements.txt tinylib==2.0)');
    const [a] = await runOnce(h, 'one', 'which');
    const [b] = await runOnce(h, 'two', 'which');
    assert.equal(a!.tinylib, '1.0');
    assert.equal(b!.tinylib, '2.0');
    assert.match(String(a!.virtual_env), /\/envs\/py-[0-9a-f]{24}$/);
    assert.notEqual(a!.virtual_env, b!.virtual_env);
    assert.ok(String(a!.tinylib_file).startsWith(String(a!.virtual_env)), `tinylib imported from the env: ${String(a!.tinylib_file)}`);
    const list = await envs(h.url);
    assert.equal(list.length, 2);
    const e1 = list.find((e) => e.requirements.includes('tinylib==1.0'))!;
    assert.deepEqual(e1.versions, [{ project: 'one', version: 'v1' }]);
    assert.ok(e1.size > 0);
    assert.ok(e1.last_used !== null, 'last_used is set by the run');
    // Built as the spiders' user, kept as the daemon's: no spider can change an environment others run with.
    const envDir = join(h.dataDir, 'envs', readlinkSync(join(h.dataDir, 'envs', e1.key)));
    assert.equal(statSync(envDir).uid, process.getuid!());
    assert.equal(statSync(join(envDir, 'pyvenv.cfg')).uid, process.getuid!());
    const log = await fetch(h.url + e1.log_url);
    assert.equal(log.status, 200);
    assert.match(await log.text(), /Successfully installed tinylib-1\.0/);
  });

  test('the same requirements build once, also when two uploads need them at once', notSpiderPath, async () => {
    const before = (await envs(h.url)).find((e) => e.requirements.includes('tinylib==1.0'))!;
    ok(await upload(h, 'one', 'v2', eggV1), 'second version, same requirements');
    const again = (await envs(h.url)).find((e) => e.key === before.key)!;
    assert.equal(again.built_at, before.built_at, 'not rebuilt');
    assert.deepEqual(again.versions.map((v) => v.version), ['v1', 'v2']);

    // Two concurrent uploads needing a new environment: one build, both versions use it.
    const egg = await buildDepsEgg(work, { installRequires: ['tinylib>=1.0,<2'] });
    const [r1, r2] = await Promise.all([upload(h, 'three', 'a', egg), upload(h, 'four', 'a', egg)]);
    ok(r1, 'concurrent upload 1');
    ok(r2, 'concurrent upload 2');
    const shared = (await envs(h.url)).filter((e) => e.requirements.includes('tinylib<2,>=1.0') || e.requirements.includes('tinylib>=1.0,<2'));
    assert.equal(shared.length, 1, JSON.stringify(await envs(h.url)));
    assert.deepEqual(shared[0]!.versions.map((v) => v.project).sort(), ['four', 'three']);
    const text = await (await fetch(h.url + shared[0]!.log_url)).text();
    assert.equal(text.match(/# .* building python environment/g)?.length, 1, text);
  });

  test('an egg requiring something no index has is refused, named, and not stored', notSpiderPath, async () => {
    const bad = await buildDepsEgg(work, { installRequires: ['nosuchpkg-spiderplane==1.0'] });
    const r = await upload(h, 'bad', 'v1', bad);
    assert.equal(r.status, 'error');
    assert.match(String(r.message), /nosuchpkg-spiderplane/);
    assert.match(String(r.message), /No matching distribution|Could not find a version/, 'pip\'s own reason');
    assert.doesNotMatch(String(r.message), /at .*\.ts:\d+/, 'no traceback of ours');
    const projects = ok(await getJson(h.url, '/listprojects.json'), 'listprojects').projects as string[];
    assert.ok(!projects.includes('bad'));
    assert.ok(!existsSync(join(h.dataDir, 'eggs', 'bad', 'v1.egg')));
    const envsDir = join(h.dataDir, 'envs');
    const linked = new Set(readdirSync(envsDir).filter((n) => /^py-[0-9a-f]{24}$/.test(n)).map((n) => readlinkSync(join(envsDir, n))));
    assert.deepEqual(readdirSync(envsDir).filter((n) => /^py-[0-9a-f]{24}\.\d+-/.test(n) && !linked.has(n)), [], 'the failed build folder is gone');
  });

  test('deleting the last version that uses an environment deletes it', notSpiderPath, async () => {
    const key = (await envs(h.url)).find((e) => e.requirements.includes('tinylib==1.0'))!.key;
    ok(await postForm(h.url, '/delversion.json', { project: 'one', version: 'v1' }), 'delversion v1');
    assert.ok((await envs(h.url)).some((e) => e.key === key), 'still used by v2');
    ok(await postForm(h.url, '/delproject.json', { project: 'one' }), 'delproject');
    assert.ok(!(await envs(h.url)).some((e) => e.key === key), 'gone from envs.json');
    assert.ok(!existsSync(join(h.dataDir, 'envs', key)), 'gone from disk');
  });

  test('an uberegg (dependencies bundled inside) keeps working, with no environment for what it bundles', async () => {
    // tinylib==9.9 is in no wheelhouse: only skipping the bundled requirement lets this deploy.
    const uber = await buildDepsEgg(work, { installRequires: ['tinylib==9.9'], bundleTinylib: true });
    const before = (await envs(h.url)).length;
    ok(await upload(h, 'uber', 'v1', uber), 'deploy uberegg');
    const [item] = await runOnce(h, 'uber', 'which');
    assert.equal(item!.tinylib, 'bundled');
    assert.equal(item!.virtual_env, null);
    assert.equal((await envs(h.url)).length, before);
  });

  test('an egg without requirements runs as before, with no environment', async () => {
    const plain = await buildDepsEgg(work, {});
    // Its spider imports tinylib, which the slave's Python does not have: scrapy list fails.
    const r = await upload(h, 'plain', 'v1', plain);
    assert.equal(r.status, 'error');
    assert.match(String(r.message), /No module named 'tinylib'/);
  });
});

describe('generic packages with dependencies', notSpiderPath, () => {
  let h: SlaveHandle;
  before(async () => { h = await startSlave({ env: pipEnv }); });
  after(async () => { await h?.stop(); });

  test('a Python package with requirements.txt runs with them (python3 is the env\'s)', async () => {
    ok(await upload(h, 'gpy', 'v1', genericPythonPackage('tinylib==2.0\n')), 'deploy generic python');
    const [item] = await runOnce(h, 'gpy', 'pywhich');
    assert.equal(item!.tinylib, '2.0');
    assert.match(String(item!.python), /\/envs\/py-[0-9a-f]{24}\/bin\/python3$/);
  });

  test('a Node package with a lockfile runs with its node_modules (npm ci, offline)', async () => {
    const zip = await nodePackageWithLockfile(work);
    ok(await upload(h, 'gnode', 'v1', zip), 'deploy node package');
    const [item] = await runOnce(h, 'gnode', 'nodewhich');
    assert.equal(item!.nodelib, '1.3.0');
    assert.match(String(item!.resolved), /\/envs\/node-[0-9a-f]{24}\.\d+-[0-9a-f]+\/node_modules\/nodelib\/index\.js$/);
    const list = await envs(h.url);
    assert.ok(list.some((e) => e.kind === 'node' && e.versions.some((v) => v.project === 'gnode')));
  });
});

describe('a build killed half-way', notSpiderPath, () => {
  test('kill -9 of the slave during a build, restart, deploy again: works', async () => {
    const dataDir = tempDir();
    // pip waits on this wheelhouse until the test opens it: the build is held mid-way, deterministically.
    const wh = await serveWheelhouse(wheelhouse);
    const env = { ...pipEnv, PIP_FIND_LINKS: wh.url };
    let h = await startSlave({ dataDir, env });
    try {
      const egg = await buildDepsEgg(work, { installRequires: ['tinylib==2.0'] });
      const uploading = upload(h, 'killed', 'v1', egg).catch(() => null);
      await waitFor('pip to ask the wheelhouse', () => (wh.requests() > 0 ? true : undefined));
      const building = (await getJson(h.url, '/envs.json')).building as Array<{ key: string; versions: unknown[]; log_url: string }>;
      assert.equal(building.length, 1);
      assert.deepEqual(building[0]!.versions, [{ project: 'killed', version: 'v1' }]);
      assert.match(await (await fetch(h.url + building[0]!.log_url)).text(), /-m pip/, 'the build log grows while it runs');
      // The build is a child process: the daemon answers meanwhile.
      assert.equal((await getJson(h.url, '/daemonstatus.json')).status, 'ok');
      const envsDir = join(dataDir, 'envs');
      const buildDir = readdirSync(envsDir).find((n) => n.startsWith(`${building[0]!.key}.`))!;
      assert.ok(buildDir, 'the build runs in its own folder');
      await hardKill9(h); // the daemon and its process group (pip with it), as systemd's kill does
      await uploading;
      assert.ok(!existsSync(join(envsDir, building[0]!.key)), 'no environment looks complete');

      h = await startSlave({ dataDir, env });
      assert.deepEqual(await envs(h.url), []);
      assert.ok(!existsSync(join(envsDir, buildDir)), 'the unfinished build is removed at start');
      wh.open();
      ok(await upload(h, 'killed', 'v1', egg), 'deploy again');
      const [item] = await runOnce(h, 'killed', 'which');
      assert.equal(item!.tinylib, '2.0');
      assert.equal((await envs(h.url)).length, 1);
    } finally {
      await h.stop();
      await wh.stop();
    }
  });
});

describe('the master follows the builds', notSpiderPath, () => {
  let master: MasterHandle;
  let slave: SlaveHandle;
  let wh: GatedWheelhouse;
  before(async () => {
    wh = await serveWheelhouse(wheelhouse);
    master = await startMaster({ args: FAST_MASTER_ARGS });
    slave = await startSlave({ args: ['--master', master.url, '--cluster-token', CLUSTER_TOKEN, '--node-name', 'n1'], env: { ...pipEnv, PIP_FIND_LINKS: wh.url } });
    await waitNodeStatus(master, 'n1', 'online');
  });
  after(async () => {
    await slave?.stop();
    await master?.stop();
    await wh?.stop();
  });

  test('the deploy shows "building environment" with the log as it grows, then the result; the project shows the requirements', async () => {
    const egg = await buildDepsEgg(work, { installRequires: ['tinylib==1.0'] });
    const r = await uploadVersion(master, 'mdeps', 'v1', egg, { wait: false });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const id = (r.body.deployment as { id: number }).id;
    type Target = { node: string; state: string; message: string | null; phase: string | null; build_log: string | null };
    const deployment = async () => (await master.api<{ deployment: { finished_at: number | null; targets: Target[] } }>('GET', `/api/deployments/${id}`)).body.deployment;
    const live = await waitFor('n1 building the environment', async () => {
      const t = (await deployment()).targets[0];
      return t && t.phase === 'building environment' && /-m pip/.test(t.build_log ?? '') ? t : undefined;
    });
    assert.equal(live.state, 'pending');
    wh.open();
    const done = await waitFor('the deploy to finish', async () => { const d = await deployment(); return d.finished_at ? d : undefined; });
    assert.equal(done.targets[0]!.state, 'ok', JSON.stringify(done));
    assert.equal(done.targets[0]!.phase, null);
    const projects = (await master.api<{ projects: Array<{ project: string; versions: Array<{ version: string; requirements: unknown; nodes: string[] }> }> }>('GET', '/api/projects')).body.projects;
    const v = projects.find((p) => p.project === 'mdeps')!.versions[0]!;
    assert.deepEqual(v.requirements, { python: ['tinylib==1.0'], node: null });
    assert.deepEqual(v.nodes, ['n1']);
  });

  test('a node that cannot build the requirement fails the deploy with pip\'s reason', async () => {
    wh.open();
    const egg = await buildDepsEgg(work, { installRequires: ['nosuchpkg-master==1.0'] });
    const r = await uploadVersion(master, 'mbad', 'v1', egg);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const t = (r.body.deployment as { targets: Array<{ state: string; message: string }> }).targets[0]!;
    assert.equal(t.state, 'failed');
    assert.match(t.message, /nosuchpkg-master/);
    assert.match(t.message, /No matching distribution/);
  });
});

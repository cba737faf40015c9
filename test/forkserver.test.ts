// The warm Python start (--forkserver, slave/runner/forkservers.ts): real Scrapy egg jobs forked
// from a forkserver are indistinguishable from spawned ones. Two real slaves run the same jobs, one
// with --forkserver and one without, and their records, items and log markers are compared: a
// finished crawl, a failing one, cancel's INT / TERM / KILL ladder, the run-as user. It also prints
// the time from schedule.json to the first request (both ways).
// Run: npx tsx --test --test-concurrency=1 test/forkserver.test.ts
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, readlinkSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { ROOT, startSlave, tempDir, uploadEgg, waitFor, postForm, type SlaveHandle } from './helpers/slave_process.ts';
import { buildDemoEgg } from './helpers/fixtures.ts';
import { buildDepsEgg, buildWheelhouse } from './helpers/deps_fixtures.ts';
import { cancel, waitFinished, waitRunning, waitForLog, waitGone, jsonLines, fetchText, isAlive, hardKill9, killGroup, type JobRecord } from './helpers/runner_checks.ts';

const work = tempDir('spiderplane-forkserver-test-');
let warm: SlaveHandle;
let cold: SlaveHandle;
const spiderPids = new Set<number>();

function procField(pid: number, key: string): string | null {
  try {
    const m = new RegExp(`^${key}:\\s+(\\S+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? m[1]! : null;
  } catch {
    return null;
  }
}

function cmdline(pid: number): string {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '); } catch { return ''; }
}

/** The keeper processes the daemon started that are still its children (a spare waiting for its job). */
function keeperChildren(daemon: number): number[] {
  let kids: number[] = [];
  try {
    for (const t of readdirSync(`/proc/${daemon}/task`)) kids = kids.concat(readFileSync(`/proc/${daemon}/task/${t}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number));
  } catch { /* gone */ }
  return kids.filter((k) => /keeper\.mjs/.test(cmdline(k)));
}

function pgrp(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

async function run(h: SlaveHandle, spider: string, extra: Array<[string, string]> = []): Promise<{ id: string; scheduledAt: number }> {
  const scheduledAt = performance.now();
  const j = await postForm(h.url, '/schedule.json', [['project', 'demo'], ['spider', spider], ...extra]);
  assert.equal(j.status, 'ok', JSON.stringify(j));
  return { id: j.jobid as string, scheduledAt };
}

async function running(h: SlaveHandle, id: string): Promise<JobRecord> {
  const r = await waitRunning(h.url, id);
  spiderPids.add(r.pid!);
  return r;
}

const logOf = async (h: SlaveHandle, spider: string, id: string) => (await fetchText(h.url, `/logs/demo/${spider}/${id}.log`)).text;
const itemsOf = async (h: SlaveHandle, spider: string, id: string) => jsonLines((await fetchText(h.url, `/items/demo/${spider}/${id}.jl`)).text);

/** What must be the same whichever way the spider started. */
function essence(r: JobRecord) {
  return { state: r.state, outcome: r.outcome, exit_code: r.exit_code, signal: r.signal, items_count: r.items_count, error_count: r.error_count };
}

before(async () => {
  const egg = await fsp.readFile(await buildDemoEgg(join(work, 'egg')));
  warm = await startSlave({ dataDir: tempDir('spiderplane-fs-warm-'), args: ['--forkserver', '--cancel-grace', '5'] });
  cold = await startSlave({ dataDir: tempDir('spiderplane-fs-cold-'), args: ['--no-forkserver', '--cancel-grace', '5'] });
  for (const h of [warm, cold]) assert.equal((await uploadEgg(h.url, 'demo', 'v1', egg)).status, 'ok');
  // The slave's interpreter is warmed at start: wait for it (the first job would otherwise be spawned).
  await waitFor('the forkserver to be ready', () => (/forkserver ready for /.test(warm.output()) ? true : undefined), 60_000, 50);
});

after(async () => {
  for (const h of [warm, cold]) if (h) await hardKill9(h).catch(() => undefined);
  for (const pid of spiderPids) if (isAlive(pid)) killGroup(pid);
  for (const h of [warm, cold]) if (h) await fsp.rm(h.dataDir, { recursive: true, force: true }).catch(() => undefined);
  await fsp.rm(work, { recursive: true, force: true }).catch(() => undefined);
});

describe('forkserver: a job forked warm is a job spawned cold', () => {
  test('a finished crawl: same record, items, log markers and stats; schedule to first request printed', async () => {
    const results: Record<string, { rec: JobRecord; log: string; items: Array<Record<string, unknown>>; firstRequestMs: number }> = {};
    for (const [name, h] of [['forkserver', warm], ['spawn', cold]] as const) {
      const { id, scheduledAt } = await run(h, 'quick', [['count', '3'], ['foo', 'bar'], ['setting', 'MY_SETTING=yes'], ['setting', 'LOG_LEVEL=DEBUG']]);
      // The first request's line is in the log: poll for it closely to time the start.
      const firstRequestMs = await waitFor(`first request of ${id}`, async () => {
        const t = await logOf(h, 'quick', id).catch(() => '');
        return /Crawled \(200\) <GET data:,quick-1>/.test(t) ? performance.now() - scheduledAt : undefined;
      }, 60_000, 5);
      const rec = await waitFinished(h.url, id);
      results[name] = { rec, log: await logOf(h, 'quick', id), items: await itemsOf(h, 'quick', id), firstRequestMs };
    }
    console.log(`# schedule -> first request (data: URI, poll every 5 ms): forkserver ${results.forkserver!.firstRequestMs.toFixed(0)} ms, spawn ${results.spawn!.firstRequestMs.toFixed(0)} ms`);
    const w = results.forkserver!;
    const c = results.spawn!;
    assert.deepEqual(essence(w.rec), essence(c.rec));
    assert.equal(w.rec.outcome, 'succeeded');
    assert.equal(w.rec.exit_code, 0);
    for (const log of [w.log, c.log]) {
      assert.match(log, /Spider closed \(finished\)/);
      assert.match(log, /Dumping Scrapy stats:/);
      assert.match(log, /'item_scraped_count': 3/);
      assert.match(log, /Overridden settings:/);
    }
    // The same stats keys, the same items (job ids aside).
    const statKeys = (log: string) => [...(/Dumping Scrapy stats:\n\{([\s\S]*?)\}/.exec(log)?.[1] ?? '').matchAll(/'([^']+)':/g)].map((m) => m[1]).sort();
    assert.deepEqual(statKeys(w.log), statKeys(c.log));
    const strip = (items: Array<Record<string, unknown>>) => items.map((i) => {
      const o = structuredClone(i) as { args: Record<string, unknown>; env: Record<string, unknown> };
      delete o.args._job;
      delete o.env.SCRAPY_JOB;
      return o;
    });
    assert.deepEqual(strip(w.items), strip(c.items));
    assert.equal(w.items.length, 3);
    assert.equal((w.items[0] as { settings: Record<string, unknown> }).settings.MY_SETTING, 'yes');
  });

  test('the spider is forked by the forkserver, leads its own process group and runs as the run-as user', async () => {
    const a = await run(warm, 'slow', [['seconds', '60']]);
    const b = await run(cold, 'slow', [['seconds', '60']]);
    const ra = await running(warm, a.id);
    const rb = await running(cold, b.id);
    for (const [h, id] of [[warm, a.id], [cold, b.id]] as const) await waitForLog(h.url, 'demo', 'slow', id, /slow tick 1 /);
    const ppid = Number(procField(ra.pid!, 'PPid'));
    assert.match(cmdline(ppid), /spiderplane-forkserver/, 'the forkserver is the spider\'s parent');
    assert.doesNotMatch(cmdline(Number(procField(rb.pid!, 'PPid'))), /spiderplane-forkserver/);
    assert.equal(pgrp(ra.pid!), ra.pid);
    assert.equal(procField(ra.pid!, 'Uid'), procField(rb.pid!, 'Uid'), 'the same user as a spawned spider');
    if (process.getuid?.() === 0) assert.notEqual(procField(ra.pid!, 'Uid'), '0', 'not root');
    assert.equal(readlinkSync(`/proc/${ra.pid}/cwd`), join(warm.dataDir, 'work', 'demo'));
    // Cancel (INT): graceful stop, same record both ways.
    for (const [h, id] of [[warm, a.id], [cold, b.id]] as const) await cancel(h.url, 'demo', id);
    const [wa, cb] = await Promise.all([waitFinished(warm.url, a.id), waitFinished(cold.url, b.id)]);
    assert.deepEqual({ ...essence(wa), items_count: null }, { ...essence(cb), items_count: null });
    assert.equal(wa.outcome, 'cancelled');
    for (const [h, id] of [[warm, a.id], [cold, b.id]] as const) {
      const log = await logOf(h, 'slow', id);
      assert.match(log, /Received SIGINT, shutting down gracefully/);
      assert.match(log, /Spider closed \(shutdown\)/);
    }
  });

  test('cancel with TERM: same graceful end both ways', async () => {
    const recs: JobRecord[] = [];
    for (const h of [warm, cold]) {
      const { id } = await run(h, 'slow', [['seconds', '60']]);
      await running(h, id);
      // Once crawling (its first tick logged): a TERM in the instant after "Spider opened", before
      // the reactor runs, ends a spawned Scrapy by SIGTERM without its handler too.
      await waitForLog(h.url, 'demo', 'slow', id, /slow tick 1 /);
      await cancel(h.url, 'demo', id, 'TERM');
      recs.push(await waitFinished(h.url, id));
      assert.match(await logOf(h, 'slow', id), /Received SIGTERM, shutting down gracefully/);
    }
    assert.deepEqual({ ...essence(recs[0]!), items_count: null }, { ...essence(recs[1]!), items_count: null });
    assert.equal(recs[0]!.outcome, 'cancelled');
  });

  test('a spider that ignores INT and TERM is stopped by the ladder\'s KILL: signal SIGKILL both ways', async () => {
    const recs: JobRecord[] = [];
    for (const h of [warm, cold]) {
      const { id } = await run(h, 'ignoresigint', [['seconds', '120']]);
      const r = await running(h, id);
      await waitForLog(h.url, 'demo', 'ignoresigint', id, /SIGINT and SIGTERM are now ignored/);
      await cancel(h.url, 'demo', id); // INT, then TERM and KILL a grace (5 s) apart
      recs.push(await waitFinished(h.url, id));
      assert.equal(isAlive(r.pid!), false);
    }
    assert.equal(recs[0]!.signal, 'SIGKILL');
    assert.equal(recs[0]!.exit_code, null);
    assert.deepEqual({ ...essence(recs[0]!), items_count: null }, { ...essence(recs[1]!), items_count: null });
  });

  test('a failing crawl: the same non-zero exit code and traceback both ways', async () => {
    const recs: JobRecord[] = [];
    const tracebacks: string[] = [];
    for (const h of [warm, cold]) {
      const { id } = await run(h, 'quick', [['setting', 'TWISTED_REACTOR=no.such.Reactor']]);
      recs.push(await waitFinished(h.url, id));
      const log = await logOf(h, 'quick', id);
      assert.match(log, /ModuleNotFoundError: No module named 'no'/);
      tracebacks.push(log.slice(log.indexOf('Traceback (most recent call last):')));
    }
    // Word for word: from runpy's frame on, as `python -m` prints it (no forkserver frame).
    assert.equal(tracebacks[0], tracebacks[1]);
    assert.match(tracebacks[0]!, /^Traceback \(most recent call last\):\n {2}File "<frozen runpy>", line \d+, in _run_module_as_main\n/);
    assert.equal(recs[0]!.exit_code, 1);
    assert.equal(recs[0]!.outcome, 'failed');
    assert.deepEqual(essence(recs[0]!), essence(recs[1]!));
  });

  test('a crawl that installs another reactor (asyncio) runs forked: the forkserver installed none', async () => {
    const reactor = 'twisted.internet.asyncioreactor.AsyncioSelectorReactor';
    const { id } = await run(warm, 'quick', [['setting', `TWISTED_REACTOR=${reactor}`], ['setting', 'LOG_LEVEL=DEBUG']]);
    const rec = await waitFinished(warm.url, id);
    const log = await logOf(warm, 'quick', id);
    assert.equal(rec.outcome, 'succeeded', log);
    assert.match(log, new RegExp(`Using reactor: ${reactor.replace(/\./g, '\\.')}`));
    assert.doesNotMatch(log, /starting the spider directly/, 'it was forked');
  });

  test('a job whose folder has its own copy of a preloaded module is spawned, and imports that copy as a fresh interpreter would', async () => {
    // json is imported by the forkserver (Scrapy needs it); a json.py in the job's folder (its cwd,
    // first on sys.path) is what `python -m scrapy` would import. This one loads the standard
    // library's json and leaves a mark.
    const workDir = join(warm.dataDir, 'work', 'demo');
    await fsp.mkdir(workDir, { recursive: true });
    const mark = join(workDir, 'own-json-used');
    await fsp.writeFile(join(workDir, 'json.py'), [
      'import importlib.util, os, sys, sysconfig',
      "_dir = os.path.join(sysconfig.get_paths()['stdlib'], 'json')",
      "_spec = importlib.util.spec_from_file_location('json', os.path.join(_dir, '__init__.py'), submodule_search_locations=[_dir])",
      '_mod = importlib.util.module_from_spec(_spec)',
      "sys.modules['json'] = _mod",
      '_spec.loader.exec_module(_mod)',
      `open(${JSON.stringify(mark)}, 'w').close()`,
      '',
    ].join('\n'), { mode: 0o644 });
    try {
      const { id } = await run(warm, 'quick');
      const rec = await waitFinished(warm.url, id);
      const log = await logOf(warm, 'quick', id);
      assert.equal(rec.outcome, 'succeeded', log);
      assert.match(log, /forkserver unavailable \(forkserver: the job's folder has its own 'json'.*starting the spider directly/);
      assert.ok(existsSync(mark), "the job imported its folder's json.py");
    } finally {
      await fsp.rm(join(workDir, 'json.py'), { force: true });
      await fsp.rm(mark, { force: true });
    }
    // Without it, jobs are forked again.
    const { id } = await run(warm, 'quick');
    await waitFinished(warm.url, id);
    assert.doesNotMatch(await logOf(warm, 'quick', id), /starting the spider directly/);
  });

  test('the forkserver refuses a job a fresh interpreter would start otherwise (PYTHON* variables, user site-packages): its keeper then spawns it', async () => {
    // The real forkserver script, driven directly: what it answers before forking anything.
    const dir = tempDir('spiderplane-fs-direct-');
    const sock = join(dir, 's');
    const server = spawn('/usr/bin/python3', [join(ROOT, 'slave', 'runner', 'forkserver.py'), 'spiderplane-forkserver', sock], { cwd: dir, env: { PATH: '/usr/bin:/bin', HOME: dir }, stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        server.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve(); });
        server.once('exit', (code) => reject(new Error(`forkserver exited ${code}`)));
      });
      // Hands it /dev/null as the log and the job, as a keeper does; prints the first answer.
      const ask = (env: Record<string, string>) => execFileSync('/usr/bin/python3', ['-c', [
        'import json, os, socket, sys',
        's = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])',
        "fd = os.open(os.devnull, os.O_WRONLY); socket.send_fds(s, [b'L'], [fd, fd])",
        "s.sendall((json.dumps({'args': ['-m', 'scrapy', 'crawl', 'none'], 'env': json.loads(sys.argv[2]), 'cwd': sys.argv[3]}) + '\\n').encode())",
        "print(s.makefile().readline().strip())",
      ].join('\n'), sock, JSON.stringify(env), dir], { encoding: 'utf8' });
      const base = { PATH: '/usr/bin:/bin', HOME: dir, PYTHONUNBUFFERED: '1' };
      assert.match(ask({ ...base, PYTHONHASHSEED: '7' }), /"error": "forkserver: the job sets PYTHONHASHSEED otherwise than this interpreter started with"/);
      const home = join(dir, 'home');
      await fsp.mkdir(join(home, '.local', 'lib', `python${execFileSync('/usr/bin/python3', ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8' }).trim()}`, 'site-packages'), { recursive: true });
      assert.match(ask({ ...base, HOME: home }), /"error": "forkserver: the job has user site-packages/);
      // The same job with the forkserver's own start-up: forked (it answers with the child's pid).
      assert.match(ask(base).trim(), /^\{"pid": \d+\}$/);
    } finally {
      server.stdin!.end();
      await new Promise((r) => { if (server.exitCode !== null) r(null); else server.once('exit', r); });
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  test('a keeper is started ahead of the job: the spider runs under the spare keeper that waited for it', async () => {
    const spare = await waitFor('a spare keeper', () => keeperChildren(cold.proc.pid!)[0]);
    const { id } = await run(cold, 'slow', [['seconds', '60']]);
    const r = await running(cold, id);
    assert.equal(Number(procField(r.pid!, 'PPid')), spare, 'the spawned spider is a child of the spare keeper');
    // The next spare follows.
    await waitFor('the next spare keeper', () => keeperChildren(cold.proc.pid!).find((k) => k !== spare));
    await cancel(cold.url, 'demo', id, 'KILL');
    assert.equal((await waitFinished(cold.url, id)).signal, 'SIGKILL');
  });

  test('a slave with no egg starts no forkserver; its spare keeper exits with it (kill -9)', async () => {
    const h = await startSlave({ dataDir: tempDir('spiderplane-fs-noegg-') });
    try {
      const spare = await waitFor('a spare keeper', () => keeperChildren(h.proc.pid!)[0]);
      assert.doesNotMatch(h.output(), /forkserver/);
      assert.ok(!existsSync(join(h.dataDir, 'forkservers')), 'no forkserver folder');
      await hardKill9(h);
      await waitGone(spare);
    } finally {
      await hardKill9(h).catch(() => undefined);
      await fsp.rm(h.dataDir, { recursive: true, force: true }).catch(() => undefined);
    }
  });

  test('a forkserver that dies is started again at the next job', async () => {
    const fsPid = Number(/forkserver ready for \S+ \(pid (\d+),/.exec(warm.output())![1]);
    assert.match(cmdline(fsPid), /spiderplane-forkserver/);
    process.kill(fsPid, 'SIGKILL');
    await waitFor('the forkserver to be reported gone', () => (/forkserver for \S+ ended/.test(warm.output()) ? true : undefined));
    // The next job starts a new forkserver, and its keeper waits for it.
    const next = await run(warm, 'slow', [['seconds', '60']]);
    const r = await running(warm, next.id);
    assert.match(cmdline(Number(procField(r.pid!, 'PPid'))), /spiderplane-forkserver/);
    await cancel(warm.url, 'demo', next.id, 'KILL');
    assert.equal((await waitFinished(warm.url, next.id)).signal, 'SIGKILL');
  });

  test('a forkserver that cannot start: jobs are spawned the plain way', async () => {
    // An interpreter that imports scrapy but refuses to run the forkserver script.
    const bin = join(work, 'bin');
    await fsp.mkdir(bin, { recursive: true, mode: 0o755 });
    const wrapper = join(bin, 'python3');
    await fsp.writeFile(wrapper, '#!/bin/sh\ncase "$1" in *spiderplane-forkserver.py) echo "no forkserver here" >&2; exit 3;; esac\nexec /usr/bin/python3 "$@"\n', { mode: 0o755 });
    const h = await startSlave({ dataDir: tempDir('spiderplane-fs-broken-'), args: ['--forkserver', '--python', wrapper] });
    try {
      assert.equal((await uploadEgg(h.url, 'demo', 'v1', await fsp.readFile(join(work, 'egg', (await fsp.readdir(join(work, 'egg'))).find((f) => f.endsWith('.egg'))!)))).status, 'ok');
      await waitFor('the forkserver to fail', () => (/forkserver for \S+ ended \(exit code 3\)/.test(h.output()) ? true : undefined));
      const { id } = await run(h, 'slow', [['seconds', '60']]);
      const r = await running(h, id);
      assert.doesNotMatch(cmdline(Number(procField(r.pid!, 'PPid'))), /spiderplane-forkserver/);
      await cancel(h.url, 'demo', id);
      assert.equal((await waitFinished(h.url, id)).outcome, 'cancelled');
    } finally {
      await hardKill9(h).catch(() => undefined);
      await fsp.rm(h.dataDir, { recursive: true, force: true }).catch(() => undefined);
    }
  });

  test('on by default; --no-forkserver (or forkserver = false) turns it off and overrides --forkserver', async () => {
    const { slaveConfig } = await import('../slave/config.ts');
    assert.equal(slaveConfig({}).forkserver, true);
    assert.equal(slaveConfig({ forkserver: true }).forkserver, true);
    assert.equal(slaveConfig({ forkserver: false }).forkserver, false);
    assert.equal(slaveConfig({ no_forkserver: true }).forkserver, false);
    assert.equal(slaveConfig({ forkserver: true, no_forkserver: true }).forkserver, false);
    assert.doesNotMatch(cold.output(), /forkserver ready/, 'a slave started with --no-forkserver starts none');
    assert.ok(existsSync(join(warm.dataDir, 'forkservers')));
  });
});

describe('forkserver: a version with its own Python environment', () => {
  test('gets its own forkserver, started in that environment at upload; its jobs are forked there and import its libraries', async () => {
    const dir = tempDir('spiderplane-fs-env-');
    const wheelhouse = await buildWheelhouse(dir, ['1.0']);
    const h = await startSlave({ dataDir: join(dir, 'data'), args: ['--forkserver'], env: { PIP_NO_INDEX: '1', PIP_FIND_LINKS: wheelhouse } });
    try {
      assert.equal((await uploadEgg(h.url, 'envdemo', 'v1', await buildDepsEgg(dir, { installRequires: ['tinylib==1.0'] }))).status, 'ok');
      const envPython = await waitFor('the environment\'s forkserver', () => /forkserver ready for (\S+\/envs\/py-[0-9a-f]{24}[^/\s]*\/bin\/python) /.exec(h.output())?.[1]);
      const j = await postForm(h.url, '/schedule.json', { project: 'envdemo', spider: 'which' });
      assert.equal(j.status, 'ok', JSON.stringify(j));
      const id = j.jobid as string;
      const rec = await waitFinished(h.url, id);
      const log = await fetchText(h.url, `/logs/envdemo/which/${id}.log`);
      assert.equal(rec.outcome, 'succeeded', log.text);
      assert.doesNotMatch(log.text, /starting the spider directly/, 'forked');
      const [item] = jsonLines((await fetchText(h.url, `/items/envdemo/which/${id}.jl`)).text) as Array<{ tinylib: string; tinylib_file: string; virtual_env: string }>;
      assert.equal(item!.tinylib, '1.0');
      assert.ok(envPython.startsWith(item!.virtual_env), `${envPython} is the job's environment ${item!.virtual_env}`);
      assert.ok(item!.tinylib_file.startsWith(item!.virtual_env), item!.tinylib_file);
    } finally {
      await hardKill9(h).catch(() => undefined);
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  });
});

describe('forkserver: orphan adoption of a forked spider', () => {
  test('kill -9 of the daemon: the forked spider and its forkserver live on, the restarted daemon re-adopts it, cancel reaches it, the exit status comes through its keeper', async () => {
    const dataDir = tempDir('spiderplane-fs-adopt-');
    let h = await startSlave({ dataDir, args: ['--forkserver', '--cancel-grace', '5'] });
    try {
      assert.equal((await uploadEgg(h.url, 'demo', 'v1', await fsp.readFile(await buildDemoEgg(join(dataDir, 'egg'))))).status, 'ok');
      const fsPid = Number(await waitFor('the forkserver', () => /forkserver ready for \S+ \(pid (\d+),/.exec(h.output())?.[1]));
      const { id } = await run(h, 'slow', [['seconds', '120']]);
      const r = await running(h, id);
      assert.equal(Number(procField(r.pid!, 'PPid')), fsPid, 'forked');
      await waitForLog(h.url, 'demo', 'slow', id, /slow tick 1 /);
      await hardKill9(h);
      assert.ok(isAlive(r.pid!), 'the spider lives on');
      assert.ok(isAlive(fsPid), 'its forkserver lives on while its child runs');
      h = await startSlave({ dataDir, args: ['--forkserver', '--cancel-grace', '5'] });
      const after = await waitRunning(h.url, id);
      assert.equal(after.pid, r.pid);
      await cancel(h.url, 'demo', id);
      const rec = await waitFinished(h.url, id);
      assert.equal(rec.outcome, 'cancelled');
      assert.equal(rec.exit_code, 0, 'the exit status from its keeper, which heard it from the forkserver');
      assert.equal(rec.signal, null);
      assert.match(await logOf(h, 'slow', id), /Received SIGINT, shutting down gracefully/);
      await waitGone(r.pid!);
      await waitGone(fsPid); // the old forkserver ends once its last child did
    } finally {
      await hardKill9(h).catch(() => undefined);
      await fsp.rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
    }
  });
});

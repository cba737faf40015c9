// The pure parts of the spider sandbox (issue 9, findings 3 and 6): the allow-listed environment,
// the run-as decision, the data-folder reachability check and the setting-path validator.
// Run: npx tsx --test test/spider_sandbox_unit.test.ts
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSpiderEnvOptions, spiderBaseEnv, SpiderEnvError } from '../slave/runner/spider_env.ts';
import { resolveRunAs, RunAsError, type PasswdEntry } from '../slave/runner/run_as.ts';
import { canTraverse, giveToRunAs, unreachableReason } from '../slave/runner/data_layout.ts';
import { lstatSync, mkdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers/slave_process.ts';
import { checkSettingPaths, SettingPathError } from '../common/scrapy_setting_paths.ts';
import { loadSlaveConfig } from '../slave/config.ts';
import { OptionError } from '../common/options.ts';

const DAEMON_ENV = {
  PATH: '/usr/bin:/bin', HOME: '/root', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', TZ: 'UTC',
  https_proxy: 'http://proxy:3128', NO_PROXY: 'localhost', PIP_INDEX_URL: 'http://pypi.local/simple', npm_config_registry: 'http://npm.local',
  SPIDERPLANE_CLUSTER_TOKEN: 'cluster-secret', SPIDERPLANE_ADMIN_PASSWORD: 'admin-secret', SPIDERPLANE_SMTP_PASSWORD: 'smtp-secret',
  SPIDERPLANE_PASSWORD: 'basic-secret', SPIDERPLANE_DATABASE_URL: 'postgres://u:db-secret@h/db', AWS_SECRET_ACCESS_KEY: 'aws-secret',
  LD_PRELOAD: '/evil.so', PYTHONPATH: '/daemon/lib', SHOPIFY_KEY: 'kept-only-if-passed',
};

describe('spider environment (allow-list)', () => {
  test('only allow-listed variables of the daemon reach a spider, HOME is the one given', () => {
    const env = spiderBaseEnv(DAEMON_ENV, { set: [], pass: [] }, '/var/lib/spiderplane-run');
    assert.deepEqual(Object.keys(env).sort(), ['HOME', 'LANG', 'LC_ALL', 'NO_PROXY', 'PATH', 'PIP_INDEX_URL', 'TZ', 'https_proxy', 'npm_config_registry'].sort());
    assert.equal(env.HOME, '/var/lib/spiderplane-run');
    for (const v of Object.values(env)) assert.doesNotMatch(v, /secret/);
  });

  test('--spider-env adds literals, --spider-env-pass copies from the daemon', () => {
    const cfg = parseSpiderEnvOptions(['FOO=bar=baz', 'EMPTY='], ['SHOPIFY_KEY', 'NOT_SET_ANYWHERE']);
    const env = spiderBaseEnv(DAEMON_ENV, cfg, '/h');
    assert.equal(env.FOO, 'bar=baz');
    assert.equal(env.EMPTY, '');
    assert.equal(env.SHOPIFY_KEY, 'kept-only-if-passed');
    assert.equal('NOT_SET_ANYWHERE' in env, false);
  });

  test('platform and job names are refused in both flags, whatever their case', () => {
    for (const name of ['SPIDERPLANE_CLUSTER_TOKEN', 'spiderplane_admin_password', 'SPIDERPLANE_SMTP_PASSWORD', 'SPIDERPLANE_DATABASE_URL', 'SCRAPY_JOB', 'SCRAPYD_EGG_VERSION']) {
      assert.throws(() => parseSpiderEnvOptions([], [name]), SpiderEnvError, name);
      assert.throws(() => parseSpiderEnvOptions([`${name}=x`], []), SpiderEnvError, name);
    }
    assert.throws(() => parseSpiderEnvOptions(['NOEQUALS'], []), /NAME=VALUE/);
    assert.throws(() => parseSpiderEnvOptions(['1BAD=x'], []), /NAME=VALUE/);
    assert.throws(() => parseSpiderEnvOptions([], ['BAD-NAME']), /variable name/);
  });

  test('the slave options: repeatable flags, a list in the environment, refusals as option errors', () => {
    const c = loadSlaveConfig(['--spider-env', 'A=1', '--spider-env', 'B=2 3', '--spider-env-pass', 'X', '--run-as', 'crawler'], {});
    assert.deepEqual(c.spiderEnv, { set: [['A', '1'], ['B', '2 3']], pass: ['X'] });
    assert.equal(c.runAs, 'crawler');
    const e = loadSlaveConfig([], { SPIDERPLANE_SPIDER_ENV: '["A=1 2","B=3"]', SPIDERPLANE_SPIDER_ENV_PASS: 'X Y' });
    assert.deepEqual(e.spiderEnv, { set: [['A', '1 2'], ['B', '3']], pass: ['X', 'Y'] });
    assert.throws(() => loadSlaveConfig(['--spider-env-pass', 'SPIDERPLANE_CLUSTER_TOKEN'], {}), OptionError);
  });
});

describe('run-as user', () => {
  const users: Record<string, PasswdEntry> = {
    root: { name: 'root', uid: 0, gid: 0, home: '/root' },
    nobody: { name: 'nobody', uid: 65534, gid: 65534, home: '/nonexistent' },
    'spiderplane-run': { name: 'spiderplane-run', uid: 990, gid: 990, home: '/var/lib/spiderplane-run' },
    alice: { name: 'alice', uid: 1000, gid: 1000, home: '/home/alice' },
  };
  const byUid = (k: string) => Object.values(users).find((u) => String(u.uid) === k);
  const all = (k: string) => users[k] ?? byUid(k) ?? null;
  const noDedicated = (k: string) => (k === 'spiderplane-run' ? null : all(k));

  test('root daemon: the dedicated user by default, nobody with a warning when it is missing', () => {
    const a = resolveRunAs(null, 0, all);
    assert.deepEqual([a.uid, a.gid, a.name, a.warnings.length], [990, 990, 'spiderplane-run', 0]);
    const b = resolveRunAs(null, 0, noDedicated);
    assert.deepEqual([b.uid, b.gid, b.name], [65534, 65534, 'nobody']);
    assert.match(b.warnings.join('\n'), /spiderplane-run does not exist.*install\.sh/);
  });

  test('root daemon: --run-as names the user; an unknown one refuses to start; root only when named, with a warning', () => {
    assert.equal(resolveRunAs('alice', 0, all).uid, 1000);
    assert.throws(() => resolveRunAs('ghost', 0, all), RunAsError);
    const r = resolveRunAs('root', 0, all);
    assert.equal(r.uid, null);
    assert.match(r.warnings.join('\n'), /every secret/);
  });

  test('non-root daemon: spiders run as itself, and it says so; --run-as another user is refused', () => {
    const s = resolveRunAs(null, 1000, all);
    assert.equal(s.uid, null);
    assert.match(s.summary, /own user alice \(uid 1000\)/);
    assert.equal(resolveRunAs('alice', 1000, all).uid, null);
    assert.throws(() => resolveRunAs('nobody', 1000, all), /only a daemon started as root/);
  });
});

describe('data folder reachable by the run-as user', () => {
  const who = { uid: 65534, gid: 65534, name: 'nobody' };
  test('owner, group and other execute bits', () => {
    assert.equal(canTraverse({ mode: 0o40700, uid: 0, gid: 0 }, who), false);
    assert.equal(canTraverse({ mode: 0o40711, uid: 0, gid: 0 }, who), true);
    assert.equal(canTraverse({ mode: 0o40750, uid: 0, gid: 65534 }, who), true);
    assert.equal(canTraverse({ mode: 0o40705, uid: 0, gid: 65534 }, who), false); // group bits apply, not other's
    assert.equal(canTraverse({ mode: 0o40700, uid: 65534, gid: 0 }, who), true);
  });

  test('names the first closed parent and the fix', () => {
    const modes: Record<string, number> = { '/': 0o755, '/root': 0o700, '/root/repo': 0o755, '/root/repo/data': 0o755 };
    const why = unreachableReason('/root/repo/data/slave', who, (p) => ({ mode: 0o40000 | modes[p]!, uid: 0, gid: 0 }));
    assert.match(why!, /cannot enter \/root \(mode 0700/);
    assert.match(why!, /chmod o\+x \/root/);
    assert.match(why!, /--data-dir/);
    modes['/root'] = 0o711;
    assert.equal(unreachableReason('/root/repo/data/slave', who, (p) => ({ mode: 0o40000 | modes[p]!, uid: 0, gid: 0 })), null);
  });
});

describe('handing a folder to the run-as user', { skip: process.getuid?.() !== 0 && 'needs root to chown' }, () => {
  test('an older root-owned work folder is handed over with its content; symlinks are changed, never followed', () => {
    const dir = tempDir('spiderplane-chown-');
    try {
      const outside = join(dir, 'outside.txt');
      writeFileSync(outside, 'the daemon\'s');
      const work = join(dir, 'work', 'demo');
      mkdirSync(join(work, '.scrapy', 'httpcache'), { recursive: true });
      writeFileSync(join(work, '.scrapy', 'httpcache', 'entry'), 'x');
      symlinkSync(outside, join(work, 'link'));
      const who = { uid: 65534, gid: 65534, name: 'nobody' };
      giveToRunAs(work, who);
      for (const p of [work, join(work, '.scrapy'), join(work, '.scrapy', 'httpcache'), join(work, '.scrapy', 'httpcache', 'entry'), join(work, 'link')]) {
        const st = lstatSync(p);
        assert.deepEqual([st.uid, st.gid], [65534, 65534], p);
      }
      assert.equal(statSync(outside).uid, 0, 'the link\'s target keeps its owner');
      assert.throws(() => giveToRunAs(join(work, 'link'), who), /not a folder/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('settings that name paths (schedule.json setting=)', () => {
  const W = '/var/lib/spiderplane/slave/work/demo';
  const ok = (s: Record<string, string>) => assert.doesNotThrow(() => checkSettingPaths(s, W), JSON.stringify(s));
  const bad = (s: Record<string, string>, re: RegExp) => assert.throws(() => checkSettingPaths(s, W), (e: Error) => e instanceof SettingPathError && re.test(e.message), JSON.stringify(s));

  test('LOG_FILE is refused whatever it names', () => {
    bad({ LOG_FILE: '/tmp/x.log' }, /^setting 'LOG_FILE=\/tmp\/x\.log' is invalid: .*log_url/);
    bad({ LOG_FILE: 'inside.log' }, /LOG_FILE is not accepted/);
    ok({ LOG_LEVEL: 'INFO', LOG_ENABLED: 'True' });
  });

  test('local paths stay in the work folder; relative ones are taken from it; .. may not leave it', () => {
    ok({ JOBDIR: 'state/quick', HTTPCACHE_DIR: 'httpcache', FEED_TEMPDIR: `${W}/tmp`, FILES_STORE: 'files', IMAGES_STORE: `file://${W}/images` });
    ok({ JOBDIR: 'a/../b', HTTPCACHE_DIR: '.' });
    for (const name of ['JOBDIR', 'HTTPCACHE_DIR', 'FEED_TEMPDIR', 'FILES_STORE', 'IMAGES_STORE', 'FEED_URI']) {
      bad({ [name]: '/etc/cron.d' }, new RegExp(`^setting '${name}=/etc/cron.d' is invalid: ${name} must stay inside the job's work folder`));
      bad({ [name]: '../../other-project' }, /must stay inside/);
      bad({ [name]: `${W}/../demo2/x` }, /must stay inside/);
    }
    bad({ FEED_URI: 'file:///root/.ssh/authorized_keys' }, /must stay inside/);
    bad({ FILES_STORE: 'file:///etc' }, /must stay inside/);
    bad({ JOBDIR: 'x\0y' }, /NUL/);
  });

  test('remote stores write nothing here and are accepted', () => {
    ok({ FILES_STORE: 's3://bucket/files', IMAGES_STORE: 'gs://bucket/img', FEED_URI: 'ftp://user:pass@host/items.jl' });
  });

  test('FEED_URI placeholders that spider arguments can fill are refused in local paths', () => {
    ok({ FEED_URI: 'feeds/items-%(time)s-%(batch_id)05d.jl' });
    bad({ FEED_URI: 'feeds/%(name)s.jl' }, /placeholder %\(name\)s/);
    bad({ FEED_URI: 'file:///x/%(dir)s' }, /placeholder/);
    ok({ FEED_URI: 's3://bucket/%(name)s/%(time)s.jl' });
  });
});

// Issue 9, finding 3: no spider sees a platform secret. Real daemons started as root (as the tests
// and CI run) with their secrets in the environment, a real generic package whose spider dumps its
// environment and tries to read the daemon's /proc/PID/environ, slave.db and (--local-slave)
// master.db; and a daemon that refuses a data folder its spiders' user cannot reach.
// Run: npx tsx --test --test-concurrency=1 test/spider_isolation.test.ts
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSlave, tempDir, uploadEgg, waitFor, type SlaveHandle } from './helpers/slave_process.ts';
import { startDaemon, type DaemonHandle } from './helpers/daemon_process.ts';
import { buildZip } from './helpers/fixtures.ts';
import { jsonLines } from './helpers/runner_checks.ts';
import { lookupUser, resolveRunAs } from '../slave/runner/run_as.ts';

const IS_ROOT = process.getuid?.() === 0;
const skip = IS_ROOT ? false : 'the daemon must run as root to run spiders as another user';

const SECRETS = {
  SPIDERPLANE_CLUSTER_TOKEN: 'cluster-token-must-not-leak-7f3a',
  SPIDERPLANE_PASSWORD: 'basic-password-must-not-leak-91c2',
  SPIDERPLANE_ADMIN_PASSWORD: 'admin-password-must-not-leak-55e0',
  SPIDERPLANE_SMTP_PASSWORD: 'smtp-password-must-not-leak-c0de',
  UNLISTED_DAEMON_SECRET: 'unlisted-secret-must-not-leak-0b1e',
};

/** A shell spider that reports who it is, its environment, and what of the daemon's it can reach. */
const PROBE = `#!/bin/sh
for a in "$@"; do case "$a" in --daemon_pid=*) PID="\${a#*=}";; --data=*) DATA="\${a#*=}";; --master_data=*) MDATA="\${a#*=}";; esac; done
try() {
  if out=$(cat "$2" 2>&1 >/dev/null); then echo "PROBE $1=READ"; else echo "PROBE $1=DENIED $out"; fi
}
echo "PROBE uid=$(id -u) gid=$(id -g) groups=$(id -G)"
env | sed 's/^/ENV /'
try environ "/proc/$PID/environ"
echo "CMDLINE $(tr '\\0' ' ' < /proc/$PID/cmdline)"
try slavedb "$DATA/slave.db"
[ -n "$MDATA" ] && try masterdb "$MDATA/master.db"
if ls "$DATA" >/dev/null 2>&1; then echo "PROBE list_data=ALLOWED"; else echo "PROBE list_data=DENIED"; fi
if touch "$SPIDERPLANE_WORK_DIR/probe-was-here" 2>/dev/null; then echo "PROBE write_work=ok"; else echo "PROBE write_work=DENIED"; fi
if touch ./probe-in-package 2>/dev/null; then echo "PROBE write_package=ALLOWED"; else echo "PROBE write_package=DENIED"; fi
if touch "$HOME/probe-home" 2>/dev/null; then echo "PROBE write_home=ok"; else echo "PROBE write_home=DENIED"; fi
printf '{"uid":%s}\\n' "$(id -u)" >> "$SPIDERPLANE_ITEMS_FILE"
`;

/** A spider that puts, where the daemon reads and serves its items, links to the daemon's files and a FIFO. */
const PLANT = `#!/bin/sh
for a in "$@"; do case "$a" in --data=*) DATA="\${a#*=}";; esac; done
dir=$(dirname "$SPIDERPLANE_ITEMS_FILE")
ln -sf "$DATA/slave.db" "$SPIDERPLANE_ITEMS_FILE" && echo "planted items link"
ln -sfn / "$dir/escape" && echo "planted folder link"
mkfifo "$dir/fifo.jl" && echo "planted fifo"
`;

const JOB_VARS = new Set(['SCRAPY_PROJECT', 'SCRAPY_SPIDER', 'SCRAPY_JOB', 'SCRAPYD_EGG_VERSION', 'SPIDERPLANE_PROJECT', 'SPIDERPLANE_SPIDER',
  'SPIDERPLANE_JOB', 'SPIDERPLANE_JOB_UID', 'SPIDERPLANE_VERSION', 'SPIDERPLANE_ITEMS_FILE', 'SPIDERPLANE_LOG_FILE', 'SPIDERPLANE_ARGS',
  'SPIDERPLANE_SETTINGS', 'SPIDERPLANE_WORK_DIR']);

let pkg: Buffer;
const work = tempDir('spiderplane-isolation-');
const daemons: DaemonHandle[] = [];

before(async () => {
  pkg = readFileSync(await buildZip(join(work, 'probe.zip'), {
    'spiderplane.json': JSON.stringify({ spiders: { probe: { command: ['/bin/sh', 'probe.sh'], env: { FROM_MANIFEST: 'yes' } }, plant: { command: ['/bin/sh', 'plant.sh'] } } }),
    'probe.sh': PROBE,
    'plant.sh': PLANT,
  }));
});

after(async () => {
  for (const d of daemons) await d.stop().catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
});

function expectedUid(): number {
  const id = resolveRunAs(null, 0, lookupUser);
  assert.ok(id.uid !== null && id.uid !== 0, 'a root daemon runs spiders as an unprivileged user');
  return id.uid;
}

interface Probe { lines: string[]; env: Map<string, string>; probe: Map<string, string>; log: string }

async function runProbe(url: string, headers: Record<string, string>, args: Array<[string, string]>, uid = expectedUid()): Promise<Probe> {
  const up = await uploadEgg(url, 'iso', '1', pkg, headers);
  assert.equal(up.status, 'ok', JSON.stringify(up));
  const body = new URLSearchParams([['project', 'iso'], ['spider', 'probe'], ...args]);
  const r = (await (await fetch(`${url}/schedule.json`, { method: 'POST', body, headers })).json()) as { status: string; jobid: string };
  assert.equal(r.status, 'ok', JSON.stringify(r));
  const fin = await waitFor('probe job finished', async () => {
    const j = (await (await fetch(`${url}/jobs.json?job=${r.jobid}`, { headers })).json()) as { jobs?: Array<{ state: string; outcome: string; error_count: number | null }> };
    const row = j.jobs?.[0];
    return row && row.state === 'finished' && row.error_count !== null ? row : undefined;
  }, 60_000, 200);
  assert.equal(fin.outcome, 'succeeded');
  const log = await (await fetch(`${url}/logs/iso/probe/${r.jobid}.log`, { headers })).text();
  const lines = log.split('\n');
  const env = new Map<string, string>();
  const probe = new Map<string, string>();
  for (const l of lines) {
    if (l.startsWith('ENV ')) { const kv = l.slice(4); const eq = kv.indexOf('='); if (eq > 0) env.set(kv.slice(0, eq), kv.slice(eq + 1)); }
    const m = /^PROBE (\w+)=(.*)$/.exec(l);
    if (m) probe.set(m[1]!, m[2]!);
  }
  const items = await (await fetch(`${url}/items/iso/probe/${r.jobid}.jl`, { headers })).text();
  assert.deepEqual(jsonLines(items), [{ uid }], 'the spider wrote its items file as the run-as user');
  return { lines, env, probe, log };
}

function assertNoSecret(p: Probe): void {
  for (const [name, value] of Object.entries(SECRETS)) {
    assert.ok(!p.log.includes(value), `${name}'s value reached the spider:\n${p.log}`);
  }
  for (const k of p.env.keys()) {
    if (k.startsWith('SPIDERPLANE_') || k.startsWith('SCRAPY')) assert.ok(JOB_VARS.has(k), `unexpected ${k} in the spider's environment`);
  }
  assert.ok(!p.env.has('UNLISTED_DAEMON_SECRET'));
}

describe('a standalone slave started as root with its secrets in the environment', { skip }, () => {
  let slave: SlaveHandle;
  const token = SECRETS.SPIDERPLANE_CLUSTER_TOKEN;
  const auth = { Authorization: `Bearer ${token}` };

  before(async () => {
    slave = await startSlave({
      env: { ...SECRETS, OPERATOR_PASSED: 'passed-on-purpose' },
      args: ['--spider-env', 'OPERATOR_SET=set on purpose', '--spider-env-pass', 'OPERATOR_PASSED'],
    });
    daemons.push(slave);
  });

  test('the daemon says who spiders run as', () => {
    assert.match(slave.output(), /spiders run as (spiderplane-run|nobody) \(uid \d+/);
  });

  test('the spider runs as the run-as user, with no supplementary groups, an allow-listed environment and no secret', async () => {
    const p = await runProbe(slave.url, auth, [['daemon_pid', String(slave.proc.pid)], ['data', slave.dataDir]]);
    const uid = expectedUid();
    assert.match(p.probe.get('uid')!, new RegExp(`^${uid} gid=\\d+ groups=\\d+$`), 'uid, and only the primary group');
    assert.doesNotMatch(p.probe.get('uid')!, /groups=0\b/);
    assertNoSecret(p);
    assert.equal(p.env.get('OPERATOR_SET'), 'set on purpose');
    assert.equal(p.env.get('OPERATOR_PASSED'), 'passed-on-purpose');
    assert.equal(p.env.get('FROM_MANIFEST'), 'yes');
    assert.equal(p.env.get('SPIDERPLANE_PROJECT'), 'iso');
    assert.ok(p.env.get('PATH'), 'PATH is kept');
    assert.ok(!p.env.has('PYTHONPATH') || p.env.get('PYTHONPATH') === undefined);
  });

  test('links and FIFOs a spider puts in its items folder are never read nor served by the daemon', async () => {
    const jobid = ((await (await fetch(`${slave.url}/schedule.json`, { method: 'POST', headers: auth, body: new URLSearchParams([['project', 'iso'], ['spider', 'plant'], ['data', slave.dataDir]]) })).json()) as { jobid: string }).jobid;
    const fin = await waitFor('plant job recorded', async () => {
      const j = (await (await fetch(`${slave.url}/jobs.json?job=${jobid}`, { headers: auth })).json()) as { jobs?: Array<{ state: string; error_count: number | null; items_count: number | null }> };
      const row = j.jobs?.[0];
      return row && row.state === 'finished' && row.error_count !== null ? row : undefined;
    }, 60_000, 200);
    const log = await (await fetch(`${slave.url}/logs/iso/plant/${jobid}.log`, { headers: auth })).text();
    assert.match(log, /planted items link[\s\S]*planted folder link[\s\S]*planted fifo/, log);
    assert.equal(fin.items_count, null, 'a symlinked items file is not counted');
    for (const path of [`/items/iso/plant/${jobid}.jl`, '/items/iso/plant/escape/etc/passwd', '/items/iso/plant/escape/', '/items/iso/plant/fifo.jl']) {
      const r = await fetch(`${slave.url}${path}`, { headers: auth, signal: AbortSignal.timeout(20_000) });
      const body = await r.text();
      assert.equal(r.status, 404, `${path} answered ${r.status}: ${body.slice(0, 200)}`);
    }
  });

  test('the daemon\'s /proc/PID/environ and slave.db are unreadable (EACCES), its data folder unlistable', async () => {
    const p = await runProbe(slave.url, auth, [['daemon_pid', String(slave.proc.pid)], ['data', slave.dataDir]]);
    assert.match(p.probe.get('environ')!, /^DENIED .*Permission denied/);
    assert.match(p.probe.get('slavedb')!, /^DENIED .*Permission denied/);
    assert.equal(p.probe.get('list_data'), 'DENIED');
    assert.equal(p.probe.get('write_work'), 'ok', 'the work folder is the spider\'s');
    assert.equal(p.probe.get('write_package'), 'DENIED', 'a spider cannot change its own package');
    assert.equal(p.probe.get('write_home'), 'ok', 'HOME is writable');
    assert.equal(statSync(join(slave.dataDir, 'slave.db')).mode & 0o777, 0o600);
    assert.equal(statSync(slave.dataDir).mode & 0o777, 0o711);
  });
});

describe('a master with --local-slave started as root, secrets in its environment', { skip }, () => {
  let master: DaemonHandle;
  let slaveUrl: string;
  const root = tempDir('spiderplane-isolation-local-');
  const masterData = join(root, 'master');

  before(async () => {
    master = await startDaemon('master', 'run_master.ts', ['--port', '0', '--data-dir', masterData, '--local-slave', '--local-slave-port', '0', '--admin-user', 'admin'],
      { ...SECRETS, SPIDERPLANE_SMTP_HOST: '127.0.0.1', SPIDERPLANE_SMTP_PORT: '9', SPIDERPLANE_SMTP_SECURE: 'none', SPIDERPLANE_SMTP_USER: 'mailer',
        SPIDERPLANE_SPIDER_ENV: 'LOCAL_EXTRA=from-the-master-env' },
      /\[spiderplane-master\] listening on (http:\/\/[^\s]+)/);
    daemons.push(master);
    slaveUrl = await waitFor('the local slave', () => /local slave listening on (http:\/\/[^\s]+)/.exec(master.output())?.[1], 60_000);
  });

  after(() => rmSync(root, { recursive: true, force: true }));

  test('its spiders get no admin, SMTP or cluster secret and cannot read master.db, slave.db nor the process environment', async () => {
    const p = await runProbe(slaveUrl, { Authorization: `Bearer ${SECRETS.SPIDERPLANE_CLUSTER_TOKEN}` },
      [['daemon_pid', String(master.proc.pid)], ['data', join(root, 'slave')], ['master_data', masterData]]);
    assertNoSecret(p);
    assert.equal(p.env.get('LOCAL_EXTRA'), 'from-the-master-env', 'the local slave takes SPIDERPLANE_SPIDER_ENV');
    assert.match(p.probe.get('environ')!, /^DENIED .*Permission denied/);
    assert.match(p.probe.get('masterdb')!, /^DENIED .*Permission denied/);
    assert.match(p.probe.get('slavedb')!, /^DENIED .*Permission denied/);
    assert.equal(statSync(masterData).mode & 0o777, 0o700);
    assert.equal(statSync(join(masterData, 'master.db')).mode & 0o777, 0o600);
  });
});

describe('a daemon that is not root', { skip }, () => {
  const nobody = lookupUser('nobody');
  const dir = tempDir('spiderplane-isolation-nonroot-');
  const as = { uid: nobody?.uid ?? 65534, gid: nobody?.gid ?? 65534 };
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('runs spiders as itself, says so in its log, and still gives them only the allow-listed environment', async () => {
    chownSync(dir, as.uid, as.gid);
    const data = join(dir, 'data');
    const d = await startDaemon('slave', 'run_slave.ts', ['--port', '0', '--data-dir', data, '--node-name', 'testnode'],
      { ...SECRETS, HOME: dir }, /listening on (http:\/\/[^\s]+)/, as);
    daemons.push(d);
    assert.match(d.output(), new RegExp(`spiders run as this daemon's own user \\S+ \\(uid ${as.uid}\\): they can read what the daemon can`));
    const p = await runProbe(d.url, { Authorization: `Bearer ${SECRETS.SPIDERPLANE_CLUSTER_TOKEN}` }, [['daemon_pid', String(d.proc.pid)], ['data', data]], as.uid);
    assertNoSecret(p);
    // what the log warns about: the same user may read the daemon's process environment
    assert.equal(p.probe.get('environ'), 'READ');
  });

  test('refuses --run-as another user, since only root can switch', async () => {
    await assert.rejects(startDaemon('slave', 'run_slave.ts', ['--port', '0', '--data-dir', join(dir, 'data2'), '--run-as', 'root'], { HOME: dir }, /listening on (http:\/\/[^\s]+)/, as),
      /exited with 1 before listening[\s\S]*only a daemon started as root can run spiders as another user/);
  });
});

describe('a data folder its spiders cannot reach', { skip }, () => {
  test('the slave refuses to start and names the folder and the fix', async () => {
    const closed = mkdtempSync(join(tmpdir(), 'spiderplane-closed-')); // 0700, as mkdtemp makes it
    try {
      await assert.rejects(startSlave({ dataDir: join(closed, 'data') }), (e: Error) => {
        assert.match(e.message, /exited with 1 before listening/);
        assert.ok(e.message.includes(`cannot enter ${closed} (mode 0700`), e.message);
        assert.ok(e.message.includes(`chmod o+x ${closed}`), e.message);
        return true;
      });
    } finally {
      rmSync(closed, { recursive: true, force: true });
    }
  });

  test('--spider-env-pass of a platform secret refuses to start', async () => {
    await assert.rejects(startSlave({ args: ['--spider-env-pass', 'SPIDERPLANE_CLUSTER_TOKEN'] }), /exited with 2 before listening[\s\S]*never passed to spiders/);
  });
});

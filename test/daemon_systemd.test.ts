// daemon/systemd/: the units pass `systemd-analyze verify` with no warning about them, and say
// what production needs (restart on failure, the dedicated user, the environment file, hardening,
// the slave's KillMode=process so a restart does not kill running crawls); the sysusers file is
// accepted by `systemd-sysusers --dry-run` (nothing is written).
// verify checks that ExecStart's binary exists: the units name /usr/bin/node (Debian's nodejs);
// when this machine's node lives elsewhere, a temporary copy points at process.execPath instead.
// Needs: systemd (scripts/install-test-deps.sh).
// Run: cd /work/main && npx tsx --test test/daemon_systemd.test.ts
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir } from './helpers/slave_process.ts';
import { DAEMON_DIR } from './helpers/daemon_tools.ts';

const ANALYZE = '/usr/bin/systemd-analyze';
const SYSUSERS = '/usr/bin/systemd-sysusers';
const UNITS = ['spiderplane-master.service', 'spiderplane-slave.service'];
const unitText = (u: string) => readFileSync(join(DAEMON_DIR, 'systemd', u), 'utf8');

/** [Service] key -> values (a key may repeat). */
function serviceKeys(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) { section = sec[1]!; continue; }
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m && section === 'Service') out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

/** Runs systemd-analyze verify on copies of the units; returns its status and the lines about them. */
function verify(files: Record<string, string>): { status: number | null; problems: string[]; all: string } {
  const dir = tempDir('spiderplane-systemd-');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text.replaceAll('/usr/bin/node ', `${process.execPath} `));
  const r = spawnSync(ANALYZE, ['verify', ...Object.keys(files).map((f) => join(dir, f))], { encoding: 'utf8', cwd: dir });
  const all = `${r.stdout}${r.stderr}`;
  return { status: r.status, problems: all.split('\n').filter((l) => l.includes('spiderplane')), all };
}

describe('systemd units', { skip: !existsSync(ANALYZE) && 'systemd-analyze is missing (bash scripts/install-test-deps.sh)' }, () => {
  test('systemd-analyze verify passes with nothing to say about them', () => {
    const r = verify(Object.fromEntries(UNITS.map((u) => [u, unitText(u)])));
    assert.equal(r.status, 0, r.all);
    assert.deepEqual(r.problems, [], r.all);
  });

  test('verify is strict enough to catch a typo (the check above means something)', () => {
    const broken = unitText('spiderplane-slave.service').replace('KillMode=process', 'KillMode=procss').replace('Restart=on-failure', 'Restart=on-failure\nRestartSecs=2');
    const r = verify({ 'spiderplane-slave.service': broken });
    assert.ok(r.problems.some((l) => /kill mode/i.test(l)), r.all);
    assert.ok(r.problems.some((l) => /Unknown key/i.test(l) && l.includes('RestartSecs')), r.all);
  });

  test('restart on failure, dedicated user, environment file, hardening', () => {
    for (const u of UNITS) {
      const role = u.includes('master') ? 'master' : 'slave';
      const k = serviceKeys(unitText(u));
      const one = (key: string) => k.get(key)?.at(-1);
      assert.equal(one('Restart'), 'on-failure', u);
      // the master runs as its dedicated user; the slave as root with a few capabilities, so that
      // spiders run as spiderplane-run and cannot read its environment or database
      if (role === 'master') assert.equal(one('User'), 'spiderplane', u);
      else {
        assert.equal(one('User'), undefined, u);
        assert.deepEqual(one('CapabilityBoundingSet')!.split(/\s+/).sort(), ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID'], u);
        assert.match(readFileSync(join(DAEMON_DIR, 'etc', 'slave.env'), 'utf8'), /^SPIDERPLANE_RUN_AS=spiderplane-run$/m);
      }
      assert.equal(one('EnvironmentFile'), `/etc/spiderplane/${role}.env`, u);
      assert.equal(one('StateDirectory'), `spiderplane/${role}`, u);
      for (const h of ['NoNewPrivileges', 'ProtectSystem', 'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'ProtectKernelTunables', 'ProtectControlGroups', 'RestrictSUIDSGID']) {
        assert.ok(k.has(h) && one(h) !== 'no', `${u}: ${h}`);
      }
      assert.equal(one('ProtectSystem'), 'strict', u);
      assert.ok(!k.has('MemoryDenyWriteExecute'), `${u}: V8 needs W+X memory`);
      // ExecStart runs a program of this repository, from the WorkingDirectory tsx is resolved in
      const exec = one('ExecStart')!;
      const m = /^\/usr\/bin\/node --import tsx \/opt\/spiderplane\/(run_(master|slave)\.ts)$/.exec(exec);
      assert.ok(m, `${u}: ExecStart=${exec}`);
      assert.equal(m![2], role);
      assert.ok(existsSync(join(ROOT, m![1]!)));
      assert.equal(one('WorkingDirectory'), '/opt/spiderplane');
      // the env file's data dir is the StateDirectory
      const env = readFileSync(join(DAEMON_DIR, 'etc', `${role}.env`), 'utf8');
      assert.match(env, new RegExp(`^SPIDERPLANE_${role.toUpperCase()}_DATA_DIR=/var/lib/spiderplane/${role}$`, 'm'));
    }
    const slave = serviceKeys(unitText('spiderplane-slave.service'));
    assert.equal(slave.get('KillMode')?.[0], 'process', 'spiders survive a slave restart (--on-shutdown leave, --orphans adopt)');
    const grace = Number(/^SPIDERPLANE_CANCEL_GRACE=(\d+)$/m.exec(readFileSync(join(DAEMON_DIR, 'etc', 'slave.env'), 'utf8'))![1]);
    assert.ok(Number.parseInt(slave.get('TimeoutStopSec')![0]!, 10) > 2 * grace, 'room for INT, TERM, KILL escalation');
  });

  test('the sysusers file creates the dedicated user (dry run)', { skip: !existsSync(SYSUSERS) && 'no systemd-sysusers' }, () => {
    const r = spawnSync(SYSUSERS, ['--dry-run', join(DAEMON_DIR, 'systemd', 'spiderplane.sysusers.conf')], { encoding: 'utf8' });
    const all = `${r.stdout}${r.stderr}`;
    assert.equal(r.status, 0, all);
    if (!/^spiderplane:/m.test(readFileSync('/etc/passwd', 'utf8'))) assert.match(all, /Creating user 'spiderplane'/, all);
    if (!/^spiderplane-run:/m.test(readFileSync('/etc/passwd', 'utf8'))) assert.match(all, /Creating user 'spiderplane-run'/, all);
  });
});

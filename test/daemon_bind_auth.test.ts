// A slave runs whatever it is sent: listening beyond loopback without authentication is remote code
// execution for the whole network. It refuses to start so, and says how to fix it; the master
// (which has logins but no TLS) warns. Real processes, started as an operator would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { ROOT, startDaemon } from './helpers/daemon_process.ts';
import { tempDir } from './helpers/slave_process.ts';
import { programArgs, type BundledEntry } from './helpers/daemon_bundle.ts';

/** Runs a program until it exits; its exit code and output. */
async function runToExit(script: BundledEntry, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
  const program = await programArgs(script);
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [...program, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
    proc.on('exit', (code) => { clearTimeout(timer); resolve({ code, output }); });
  });
}

test('a slave on 0.0.0.0 without --username/--password or --cluster-token refuses to start and says how to fix it', async () => {
  const dir = tempDir('spiderplane-bind-');
  try {
    for (const bind of ['0.0.0.0', '::']) {
      const r = await runToExit('run_slave.ts', ['--bind', bind, '--port', '0', '--data-dir', dir]);
      assert.equal(r.code, 2, r.output);
      assert.match(r.output, new RegExp(`refusing to listen on ${bind.replace(/\./g, '\\.')} without authentication`));
      assert.match(r.output, /--cluster-token/);
      assert.match(r.output, /--username and --password/);
      assert.match(r.output, /--insecure-no-auth/);
      assert.doesNotMatch(r.output, /listening on/);
    }
    // A username alone is not authentication.
    const half = await runToExit('run_slave.ts', ['--bind', '0.0.0.0', '--port', '0', '--data-dir', dir, '--username', 'u']);
    assert.equal(half.code, 2, half.output);
    // The same through the environment, as systemd and containers set it.
    const env = await runToExit('run_slave.ts', ['--port', '0', '--data-dir', dir], { SPIDERPLANE_SLAVE_BIND: '0.0.0.0' });
    assert.equal(env.code, 2, env.output);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('with a cluster token, with basic auth, or with --insecure-no-auth it starts; on loopback it needs nothing', async () => {
  const cases: Array<{ args: string[]; env?: Record<string, string> }> = [
    { args: ['--bind', '0.0.0.0', '--cluster-token', 'a-token'] },
    { args: ['--bind', '0.0.0.0'], env: { SPIDERPLANE_USERNAME: 'u', SPIDERPLANE_PASSWORD: 'p' } },
    { args: ['--bind', '0.0.0.0', '--insecure-no-auth'] },
    { args: ['--bind', '127.0.0.1'] },
  ];
  for (const c of cases) {
    const dir = tempDir('spiderplane-bind-');
    try {
      const d = await startDaemon('slave', 'run_slave.ts', ['--port', '0', '--data-dir', dir, ...c.args], c.env, /listening on (http:\/\/[^\s]+)/);
      assert.doesNotMatch(d.output(), /refusing/);
      await d.stop();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
});

test('a master on 0.0.0.0 starts and warns that it speaks plain HTTP; on loopback it does not', async () => {
  for (const [bind, warns] of [['0.0.0.0', true], ['127.0.0.1', false]] as const) {
    const dir = tempDir('spiderplane-bind-');
    try {
      const d = await startDaemon('master', 'run_master.ts', ['--bind', bind, '--port', '0', '--data-dir', dir, '--admin-password', 'admin-password-1', '--cluster-token', 't'], undefined,
        /\[spiderplane-master\] listening on (http:\/\/[^\s]+)/);
      // The warning comes before the listening line.
      await d.stop();
      if (warns) assert.match(d.output(), /warning: listening on 0\.0\.0\.0 over plain HTTP/);
      else assert.doesNotMatch(d.output(), /plain HTTP/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
});

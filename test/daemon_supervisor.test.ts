// daemon/supervisor/spiderplane.conf under Debian's real supervisord: it starts a master and a
// slave (the shipped daemon/etc/*.env files with the test's ports and folders), a `kill -9` of
// the slave is restarted by supervisord, and the master sees the new slave process come back.
// supervisord runs in the foreground from a temporary folder with its own socket; the shipped
// program file is included unchanged, its %(ENV_X)s paths set by the test's [supervisord] section.
// Needs: apt-get install supervisor (scripts/install-test-deps.sh).
// Run: cd /work/main && npx tsx --test test/daemon_supervisor.test.ts
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { ROOT, tempDir, waitFor } from './helpers/slave_process.ts';
import { basic } from './helpers/master_process.ts';
import { lookupUser } from '../slave/runner/run_as.ts';
import { DAEMON_DIR, envFileWith, execFileP, exitOf, freePort, killGroupOf } from './helpers/daemon_tools.ts';

const SUPERVISORD = '/usr/bin/supervisord';
const SUPERVISORCTL = '/usr/bin/supervisorctl';
const ADMIN = { user: 'admin', password: 'sv-admin-password' };
const TOKEN = 'sv-cluster-token';
const NODE = 'sv-slave';

interface NodeView { name: string; status: string; last_heartbeat_at: number | null; last_error: string | null; metrics: { daemon_uptime_seconds?: number } | null }

const work = tempDir('spiderplane-supervisor-');
const conf = join(work, 'supervisord.conf');
let supervisord: ChildProcess;
let masterUrl = '';
let out = '';

async function ctl(...args: string[]): Promise<string> {
  try {
    return (await execFileP(SUPERVISORCTL, ['-c', conf, ...args])).stdout;
  } catch (e) {
    return (e as { stdout?: string }).stdout ?? ''; // supervisorctl exits non-zero for some states; the text is what counts
  }
}

async function slavePid(): Promise<number | undefined> {
  const pid = Number((await ctl('pid', 'spiderplane:spiderplane-slave')).trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

async function node(): Promise<NodeView | undefined> {
  const r = await fetch(`${masterUrl}/api/nodes`, { headers: { Authorization: basic(ADMIN.user, ADMIN.password) } });
  if (r.status !== 200) return undefined;
  return ((await r.json()) as { nodes: NodeView[] }).nodes.find((n) => n.name === NODE);
}

function logs(): string {
  const read = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').slice(-3000) : '(none)');
  return `supervisord:\n${out}\n--- master.log:\n${read(join(work, 'log', 'master.log'))}\n--- slave.log:\n${read(join(work, 'log', 'slave.log'))}`;
}

describe('supervisord runs the master and a slave from daemon/supervisor/spiderplane.conf', { skip: !existsSync(SUPERVISORD) && 'supervisor is not installed (bash scripts/install-test-deps.sh)' }, () => {
  before(async () => {
    const [masterPort, slavePort] = [await freePort(), await freePort()];
    masterUrl = `http://127.0.0.1:${masterPort}`;
    for (const d of ['etc', 'log', 'master', 'slave']) mkdirSync(join(work, d));
    envFileWith('master.env', {
      SPIDERPLANE_MASTER_PORT: String(masterPort), SPIDERPLANE_MASTER_DATA_DIR: join(work, 'master'), SPIDERPLANE_CLUSTER_TOKEN: TOKEN,
      SPIDERPLANE_ADMIN_USER: ADMIN.user, SPIDERPLANE_ADMIN_PASSWORD: ADMIN.password,
      // quick node judgement, so the outage is seen within the test
      SPIDERPLANE_HEARTBEAT_INTERVAL: '0.3', SPIDERPLANE_HEARTBEAT_TIMEOUT: '1', SPIDERPLANE_OFFLINE_AFTER: '1.5',
    }, join(work, 'etc', 'master.env'));
    envFileWith('slave.env', {
      SPIDERPLANE_SLAVE_BIND: '127.0.0.1', SPIDERPLANE_SLAVE_PORT: String(slavePort), SPIDERPLANE_ADVERTISE_URL: `http://127.0.0.1:${slavePort}`,
      SPIDERPLANE_NODE_NAME: NODE, SPIDERPLANE_SLAVE_DATA_DIR: join(work, 'slave'), SPIDERPLANE_MASTER: masterUrl, SPIDERPLANE_CLUSTER_TOKEN: TOKEN,
      SPIDERPLANE_MAX_PROC: '2', SPIDERPLANE_METRICS_INTERVAL: '1',
      // the shipped file names spiderplane-run (scripts/install.sh creates it); a machine set up
      // without it runs the test's spiders as nobody
      SPIDERPLANE_RUN_AS: lookupUser('spiderplane-run') ? 'spiderplane-run' : 'nobody',
    }, join(work, 'etc', 'slave.env'));
    const env = [
      `SPIDERPLANE_ROOT="${ROOT}"`, `SPIDERPLANE_ETC="${join(work, 'etc')}"`, `SPIDERPLANE_LOG_DIR="${join(work, 'log')}"`,
      `SPIDERPLANE_DAEMON_USER="${userInfo().username}"`, `SPIDERPLANE_NODE_BIN="${process.execPath}"`,
    ].join(',');
    writeFileSync(conf, [
      '[supervisord]', 'nodaemon=true', `logfile=${join(work, 'supervisord.log')}`, `pidfile=${join(work, 'supervisord.pid')}`,
      `childlogdir=${join(work, 'log')}`, `environment=${env}`, '',
      '[unix_http_server]', `file=${join(work, 'supervisor.sock')}`, '',
      '[rpcinterface:supervisor]', 'supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface', '',
      '[supervisorctl]', `serverurl=unix://${join(work, 'supervisor.sock')}`, '',
      '[include]', `files=${join(DAEMON_DIR, 'supervisor', 'spiderplane.conf')}`, '',
    ].join('\n'));
    supervisord = spawn(SUPERVISORD, ['-c', conf], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    supervisord.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    supervisord.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  });

  after(async () => {
    if (supervisord && supervisord.exitCode === null) {
      supervisord.kill('SIGTERM'); // supervisord stops its programs (TERM, then KILL after stopwaitsecs) and exits
      const timer = setTimeout(() => killGroupOf(supervisord, 'SIGKILL'), 15_000);
      await exitOf(supervisord);
      clearTimeout(timer);
    }
  });

  test('both programs run and the slave joins the master', async () => {
    await waitFor('the slave online at the master', async () => ((await node())?.status === 'online' ? true : undefined), 60_000, 200)
      .catch((e: Error) => { throw new Error(`${e.message}\n${logs()}`); });
    // RUNNING once each has stayed up for startsecs
    await waitFor('both programs RUNNING', async () => {
      const status = await ctl('status');
      return /spiderplane:spiderplane-master\s+RUNNING/.test(status) && /spiderplane:spiderplane-slave\s+RUNNING/.test(status) ? true : undefined;
    }, 60_000, 200);
  });

  test('kill -9 of the slave: supervisord restarts it and the master sees it come back', async () => {
    const oldPid = await slavePid();
    assert.ok(oldPid, 'supervisorctl pid of the slave');
    // the supervised process is node itself (sh exec'd it): no wrapper left to keep the port
    assert.match(readFileSync(`/proc/${oldPid}/cmdline`, 'utf8'), /run_slave\.ts/);
    const killedAt = Date.now();
    process.kill(oldPid, 'SIGKILL');

    // the master noticed the outage: a failed heartbeat, or the node judged offline
    let sawOutage = false;
    const newPid = await waitFor('supervisord to restart the slave', async () => {
      const n = await node();
      if (n && (n.status !== 'online' || n.last_error)) sawOutage = true;
      const pid = await slavePid();
      return pid && pid !== oldPid ? pid : undefined;
    }, 60_000, 100).catch((e: Error) => { throw new Error(`${e.message}\n${logs()}`); });
    assert.match(readFileSync(`/proc/${newPid}/cmdline`, 'utf8'), /run_slave\.ts/);

    const back = await waitFor('the restarted slave online at the master', async () => {
      const n = await node();
      if (n && (n.status !== 'online' || n.last_error)) sawOutage = true;
      // a heartbeat from the new process: received after the kill, daemon uptime shorter than the time since
      const fresh = n && n.status === 'online' && !n.last_error && (n.last_heartbeat_at ?? 0) > killedAt
        && (n.metrics?.daemon_uptime_seconds ?? Infinity) <= (Date.now() - killedAt) / 1000 + 1;
      return fresh ? n : undefined;
    }, 60_000, 100).catch((e: Error) => { throw new Error(`${e.message}\n${logs()}`); });
    assert.equal(back.status, 'online');
    assert.ok(sawOutage, 'the master saw the slave down (a failed heartbeat or offline) before it came back');
    await waitFor('the restarted slave RUNNING for supervisord', async () => (/RUNNING/.test(await ctl('status', 'spiderplane:spiderplane-slave')) ? true : undefined), 60_000, 200);
    // supervisord's own log records the unexpected exit and the restart
    const svLog = readFileSync(join(work, 'supervisord.log'), 'utf8');
    assert.match(svLog, /spiderplane-slave.*(terminated by SIGKILL|exit status)/, svLog);
  });
});

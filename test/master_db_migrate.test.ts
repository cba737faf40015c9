// `spiderplane db migrate`: a SQLite master's users, schedules, runs and packages moved into a new
// PostgreSQL database; a master started there has them all, and pushes the package to a node that
// joins afterwards (its bytes came across too). A second migrate into the same database is refused.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startMaster, type MasterHandle } from './helpers/master_process.ts';
import { ROOT, getJson, tempDir, waitFor, type SlaveHandle } from './helpers/slave_process.ts';
import { joinSlave, uploadVersion } from './helpers/master_slave_pair.ts';
import { buildNodePackage } from './helpers/fixtures.ts';
import { freshDatabaseUrl } from './helpers/postgres.ts';

const cleanup: Array<() => Promise<unknown>> = [];
after(async () => { for (const c of cleanup.reverse()) await c().catch(() => undefined); });

function cli(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [join(ROOT, 'bin', 'spiderplane.mjs'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => res({ code, out }));
  });
}

test('a SQLite master moves to PostgreSQL with its users, schedules, history and packages', async () => {
  const work = tempDir('spiderplane-migrate-');
  cleanup.push(() => rm(work, { recursive: true, force: true }));
  const dataDir = join(work, 'sqlite-master');
  let master: MasterHandle = await startMaster({ dataDir, args: ['--database', `sqlite:${join(dataDir, 'master.db')}`] });
  cleanup.push(() => master.stop());
  const pkg = await readFile(await buildNodePackage(work));
  const up = await uploadVersion(master, 'gen', '7', pkg);
  assert.equal(up.status, 201, JSON.stringify(up.body));
  const sched = await master.api<{ schedule: { id: number } }>('POST', '/api/schedules', { name: 'nightly', cron: '0 3 * * *', project: 'gen', spider: 'hello', enabled: false });
  assert.equal(sched.status, 201, JSON.stringify(sched.body));
  const user = await master.api('POST', '/api/users', { username: 'carol', password: 'carol-password-1', role: 'operator' });
  assert.equal(user.status, 201, JSON.stringify(user.body));
  assert.equal(await master.stop(), 0);

  const url = await freshDatabaseUrl();
  const moved = await cli(['db', 'migrate', '--from', `sqlite:${join(dataDir, 'master.db')}`, '--to', url]);
  assert.equal(moved.code, 0, moved.out);
  assert.match(moved.out, /versions\s+1 rows/);
  assert.doesNotMatch(moved.out, /warning/);
  const again = await cli(['db', 'migrate', '--from', `sqlite:${join(dataDir, 'master.db')}`, '--to', url]);
  assert.equal(again.code, 1);
  assert.match(again.out, /not empty/);
  const bad = await cli(['db', 'migrate', '--from', 'mysql://x', '--to', url]);
  assert.equal(bad.code, 1);
  assert.match(bad.out, /must be sqlite:PATH or postgres:/);

  // A new master, another data folder: everything comes from PostgreSQL.
  master = await startMaster({ dataDir: join(work, 'pg-master'), args: ['--database', url, '--heartbeat-interval', '0.5'] });
  const schedules = (await master.api<{ schedules: Array<{ name: string }> }>('GET', '/api/schedules')).body.schedules;
  assert.deepEqual(schedules.map((s) => s.name), ['nightly']);
  const users = (await master.api<{ users: Array<{ username: string }> }>('GET', '/api/users')).body.users;
  assert.deepEqual(users.map((u) => u.username).sort(), ['admin', 'carol']);
  const carol = await master.api('GET', '/api/status', undefined, 'Basic ' + Buffer.from('carol:carol-password-1').toString('base64'));
  assert.equal(carol.status, 200, 'a migrated user logs in with the same password');
  // A node that joins now gets version 7 pushed from the bytes in the database.
  const slave: SlaveHandle = await joinSlave(master, 'late-node');
  cleanup.push(() => slave.stop());
  await waitFor('the late node to hold gen 7', async () => {
    const v = await getJson(slave.url, '/listversions.json', { project: 'gen' }, { Authorization: 'Bearer test-cluster-token' });
    return (v.versions as string[] | undefined)?.includes('7') ? true : undefined;
  }, 60_000);
});

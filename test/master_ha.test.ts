// Several masters on one real PostgreSQL (a throwaway cluster): exactly one leads; a kill -9 of the
// leader hands over to a standby, and a 2 s cron keeps firing with no occurrence dispatched twice;
// a leader frozen (SIGSTOP) past its lease and then resumed neither dispatches nor mails; a mail being
// sent at the kill is delivered once; a slave announced to one master is seen by all, and a package
// uploaded through a standby reaches a node through the leader.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { ADMIN, basic, startMaster, openDatabaseOf, type MasterHandle } from './helpers/master_process.ts';
import { startSlave, tempDir, waitFor, type SlaveHandle } from './helpers/slave_process.ts';
import { CLUSTER_TOKEN } from './helpers/master_process.ts';
import { deployNodePackage, waitNodeStatus, type RunView } from './helpers/master_slave_pair.ts';
import { freshDatabaseUrl } from './helpers/postgres.ts';
import { startSmtp, type SmtpHandle } from './helpers/smtp.ts';

interface Status { leader: boolean; master_id: string; epoch: number; leader_id: string | null; masters: Array<{ id: string; leader: boolean }> }
interface Fire { scheduled_for: number; outcome: string; detail: string | null }

const LEASE_S = 3;
const OPS = 'ops@test.example';
let database: string;
let smtp: SmtpHandle;
let masters: MasterHandle[] = [];
let slave: SlaveHandle;
let work: string;

const args = () => [
  '--database', database, '--leader-lease', String(LEASE_S),
  '--heartbeat-interval', '0.5', '--heartbeat-timeout', '2', '--offline-after', '8',
  '--smtp-host', '127.0.0.1', '--smtp-port', String(smtp.port), '--smtp-secure', 'none', '--smtp-from', 'spiderplane@test.example',
  '--alert-to', OPS, '--alert-group-seconds', '0', '--alert-group-wait', '0', '--mail-retry-min', '0.3', '--mail-retry-max', '1',
];

async function status(m: MasterHandle): Promise<Status | null> {
  try {
    const r = await m.api<Status>('GET', '/api/status');
    return r.status === 200 ? r.body : null;
  } catch {
    return null; // killed or frozen
  }
}

/** The one master that says it leads (all live ones agreeing on it); waits for there to be one. */
async function leader(live: MasterHandle[]): Promise<MasterHandle> {
  return waitFor('exactly one leader, named by every live master', async () => {
    const s = await Promise.all(live.map(status));
    if (s.some((x) => x === null)) return undefined;
    const leading = live.filter((_, i) => s[i]!.leader);
    if (leading.length !== 1) return undefined;
    const id = s[live.indexOf(leading[0]!)]!.master_id;
    return s.every((x) => x!.leader_id === id) ? leading[0] : undefined;
  }, 60_000, 100);
}

before(async () => {
  database = await freshDatabaseUrl();
  smtp = await startSmtp();
  work = tempDir('spiderplane-ha-');
  masters = [];
  for (let i = 0; i < 3; i++) masters.push(await startMaster({ args: args() }));
  // The slave announces to every master; each of them lists it.
  slave = await startSlave({ args: ['--master', masters.map((m) => m.url).join(','), '--cluster-token', CLUSTER_TOKEN, '--node-name', 'ha-node'] });
  for (const m of masters) await waitNodeStatus(m, 'ha-node', 'online');
});

after(async () => {
  await slave?.stop();
  for (const m of masters) { try { process.kill(-m.proc.pid!, 'SIGCONT'); } catch { /* gone */ } await m.stop().catch(() => undefined); }
  await smtp?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('masters sharing one PostgreSQL', () => {
  test('exactly one leads; every master names it, its epoch and the standbys', async () => {
    const l = await leader(masters);
    const s = (await status(masters.find((m) => m !== l)!))!;
    assert.equal(s.leader, false);
    assert.equal(s.masters.length, 3);
    assert.equal(s.masters.filter((m) => m.leader).length, 1);
    const metrics = await (await fetch(`${l.url}/metrics`, { headers: { Authorization: basic(ADMIN.user, ADMIN.password) } })).text();
    assert.match(metrics, /^spiderplane_master_leader 1$/m);
  });

  test('a slave announced to one master only is seen by all, and a package uploaded through a standby reaches it', async () => {
    const l = await leader(masters);
    const standby = masters.find((m) => m !== l)!;
    const lone = await startSlave({ args: ['--master', standby.url, '--cluster-token', CLUSTER_TOKEN, '--node-name', 'lone-node'] });
    try {
      for (const m of masters) await waitNodeStatus(m, 'lone-node', 'online');
    } finally {
      await lone.stop();
    }
    await standby.api('DELETE', '/api/nodes/lone-node');
    // Uploaded to a standby: the deploy (and any later one to a node that joins) works from the database.
    await deployNodePackage(standby, work);
  });

  test('kill -9 of the leader: a standby leads, a 2 s cron keeps firing, no occurrence is dispatched twice', async () => {
    const first = await leader(masters);
    const other = masters.find((m) => m !== first)!;
    const created = await other.api<{ schedule: { id: number } }>('POST', '/api/schedules', { name: 'ha-every-2s', cron: '*/2 * * * * *', project: 'gen', spider: 'hello', overlap: 'allow' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.schedule.id;
    const fires = async (m: MasterHandle) => (await m.api<{ fires: Fire[] }>('GET', `/api/schedules/${id}`)).body.fires;
    await waitFor('two dispatched fires under the first leader', async () => (await fires(other)).filter((f) => f.outcome === 'dispatched').length >= 2 || undefined, 60_000, 200);
    const killedAt = Date.now();
    await first.kill9();
    masters = masters.filter((m) => m !== first);
    const next = await leader(masters);
    console.log(`# takeover after kill -9: ${((Date.now() - killedAt) / 1000).toFixed(1)} s (lease ${LEASE_S} s)`);
    await waitFor('two dispatched fires under the new leader', async () => {
      const f = await fires(next);
      return f.filter((x) => x.outcome === 'dispatched' && x.scheduled_for > killedAt).length >= 2 || undefined;
    }, 60_000, 200);
    await other.api('PUT', `/api/schedules/${id}`, { name: 'ha-every-2s', cron: '*/2 * * * * *', project: 'gen', spider: 'hello', overlap: 'allow', enabled: false });
    // The record: each occurrence handled once, and exactly one run per dispatched occurrence.
    const db = await openDatabaseOf({ database, dataDir: work });
    try {
      const dup = await db.all(`SELECT scheduled_for FROM schedule_fires WHERE schedule_id = ? GROUP BY scheduled_for HAVING COUNT(*) > 1`, [id]);
      assert.deepEqual(dup, []);
      const dispatched = await db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM schedule_fires WHERE schedule_id = ? AND outcome IN ('dispatched', 'missed-run')`, [id]);
      const runs = await db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM runs WHERE schedule_id = ?`, [id]);
      assert.equal(runs!.n, dispatched!.n);
    } finally {
      await db.close();
    }
  });

  test('a leader frozen past its lease and resumed neither dispatches nor marks nodes offline; it steps down', async () => {
    const frozen = await leader(masters);
    const rest = masters.filter((m) => m !== frozen);
    const created = await rest[0]!.api<{ schedule: { id: number } }>('POST', '/api/schedules', { name: 'ha-frozen', cron: '*/2 * * * * *', project: 'gen', spider: 'hello', overlap: 'allow' });
    const id = created.body.schedule.id;
    process.kill(-frozen.proc.pid!, 'SIGSTOP');
    let resumed = false;
    try {
      const next = await leader(rest);
      await waitFor('a fire under the new leader', async () => (await next.api<{ fires: Fire[] }>('GET', `/api/schedules/${id}`)).body.fires.some((f) => f.outcome === 'dispatched') || undefined, 60_000, 200);
      process.kill(-frozen.proc.pid!, 'SIGCONT');
      resumed = true;
      await waitFor('the resumed master to say it is a standby', async () => (await status(frozen))?.leader === false || undefined, 60_000, 100);
      assert.match(frozen.output(), /no longer leads/);
      await rest[0]!.api('PUT', `/api/schedules/${id}`, { name: 'ha-frozen', cron: '*/2 * * * * *', project: 'gen', spider: 'hello', overlap: 'allow', enabled: false });
    } finally {
      if (!resumed) process.kill(-frozen.proc.pid!, 'SIGCONT');
    }
    const db = await openDatabaseOf({ database, dataDir: work });
    try {
      const dispatched = await db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM schedule_fires WHERE schedule_id = ? AND outcome IN ('dispatched', 'missed-run')`, [id]);
      const runs = await db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM runs WHERE schedule_id = ?`, [id]);
      assert.equal(runs!.n, dispatched!.n);
      const offline = await db.all(`SELECT * FROM node_events WHERE node = 'ha-node' AND status = 'offline'`);
      assert.deepEqual(offline, [], 'no master marked the live node offline');
    } finally {
      await db.close();
    }
  });

  test('a mail being sent when the leader is killed is delivered once, by the next leader', async () => {
    const l = await leader(masters);
    smtp.hold = true;
    const before = smtp.mails.length;
    const run = await l.api<{ runs: RunView[] }>('POST', '/api/runs', { project: 'gen', spider: 'crash' });
    assert.equal(run.status, 201, JSON.stringify(run.body));
    await waitFor('the job-failed mail to be on the wire', () => smtp.held > 0 || undefined, 60_000, 50);
    await l.kill9();
    masters = masters.filter((m) => m !== l);
    await waitFor('the SMTP server to see the killed sender gone', () => smtp.heldOpen === 0 || undefined, 30_000, 20);
    assert.equal(smtp.release(), 0, 'the killed leader delivered nothing');
    smtp.hold = false;
    await leader(masters);
    await waitFor('the mail, sent again by the new leader', () => smtp.mails.length > before || undefined, 60_000, 100);
    const db = await openDatabaseOf({ database, dataDir: work });
    try {
      await waitFor('its outbox row marked sent', async () => (await db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM mail_outbox WHERE state <> 'sent'`))!.n === 0 || undefined, 60_000, 100);
    } finally {
      await db.close();
    }
    const failing = smtp.mails.slice(before).filter((m) => m.subject.includes('gen/crash'));
    assert.equal(failing.length, 1, failing.map((m) => m.subject).join(' | '));
  });
});

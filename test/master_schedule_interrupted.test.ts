// A master that died between claiming a cron occurrence and recording what it did with it: at the
// next start the occurrence is accounted for (never silently lost, never fired twice).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startMaster, type MasterHandle, openDatabaseOf } from './helpers/master_process.ts';
import { tempDir, type SlaveHandle } from './helpers/slave_process.ts';
import { FAST_MASTER_ARGS, deployNodePackage, joinSlave, waitNodeStatus } from './helpers/master_slave_pair.ts';

const dataDir = tempDir('spiderplane-interrupted-');
let master: MasterHandle;
let slave: SlaveHandle;

interface Fire { scheduled_for: number; outcome: string; detail: string | null }

before(async () => {
  master = await startMaster({ dataDir, args: FAST_MASTER_ARGS });
  slave = await joinSlave(master, 'n1');
  await deployNodePackage(master, tempDir());
});

after(async () => {
  await slave.stop().catch(() => undefined);
  await master.stop().catch(() => undefined);
});

async function schedule(missed: 'skip' | 'run_once'): Promise<number> {
  // Far from firing on its own during the test: once a year.
  const r = await master.api<{ schedule: { id: number } }>('POST', '/api/schedules', { project: 'gen', spider: 'hello', cron: '0 0 1 1 *', missed, overlap: 'allow' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.schedule.id;
}

test('an occurrence claimed but never recorded is recorded at restart: missed (skip) or run once (run_once)', async () => {
  const skipId = await schedule('skip');
  const onceId = await schedule('run_once');
  await master.kill9();
  // What a crash right after the claim leaves behind: last_fire_at set, no fire record, no run.
  const occurrence = Date.now() - 2000;
  const db = await openDatabaseOf(master);
  await db.run(`UPDATE schedules SET last_fire_at = ? WHERE id IN (?, ?)`, [occurrence, skipId, onceId]);
  await db.close();
  master = await startMaster({ dataDir, args: FAST_MASTER_ARGS });
  await waitNodeStatus(master, 'n1', 'online');
  const fires = async (id: number) => (await master.api<{ fires: Fire[]; runs: Array<{ job: string }> }>('GET', `/api/schedules/${id}`)).body;
  const skip = await fires(skipId);
  assert.deepEqual(skip.fires.map((f) => [f.scheduled_for, f.outcome]), [[occurrence, 'missed']], JSON.stringify(skip.fires));
  assert.match(skip.fires[0]!.detail ?? '', /stopped while firing/);
  assert.equal(skip.runs.length, 0);
  const once = await fires(onceId);
  assert.deepEqual(once.fires.map((f) => [f.scheduled_for, f.outcome]), [[occurrence, 'missed-run']], JSON.stringify(once.fires));
  assert.equal(once.runs.length, 1, 'run once: exactly one run for the interrupted occurrence');

  // A second restart changes nothing: the occurrence is accounted for.
  await master.stop();
  master = await startMaster({ dataDir, args: FAST_MASTER_ARGS });
  assert.equal((await fires(onceId)).fires.length, 1);
  assert.equal((await fires(onceId)).runs.length, 1);
  assert.equal((await fires(skipId)).fires.length, 1);
});

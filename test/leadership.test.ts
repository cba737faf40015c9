// The leader lease on both engines: one holder at a time, a takeover only after expiry with a new
// epoch, and fenced writes refused to a master whose epoch is no longer current.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openMasterStore } from '../master/store/open_store.ts';
import type { SqlDb } from '../master/store/sql_db.ts';
import { LeaderStore } from '../master/cluster/leader_store.ts';
import { Leadership, NotLeader } from '../master/cluster/leadership.ts';
import { LeaderDuties } from '../master/cluster/leader_duties.ts';
import { freshDatabaseUrl } from './helpers/postgres.ts';
import { tempDir, waitFor } from './helpers/slave_process.ts';
import { ScheduleStore } from '../master/schedules/schedule_store.ts';
import { RunStore } from '../master/runs/run_store.ts';
import { Scheduler } from '../master/schedules/scheduler.ts';
import type { Dispatcher } from '../master/runs/dispatcher.ts';

const engines: Array<[string, () => Promise<SqlDb>]> = [
  ['sqlite', () => openMasterStore({ kind: 'sqlite', file: join(tempDir('spiderplane-lease-'), 'master.db') })],
  ['postgres', async () => openMasterStore({ kind: 'postgres', url: await freshDatabaseUrl() })],
];

for (const [engine, open] of engines) {
  describe(`leader lease on ${engine}`, () => {
    const dbs: SqlDb[] = [];
    after(async () => { for (const d of dbs) await d.close(); });
    const db = async () => { const d = await open(); dbs.push(d); return d; };

    test('one holder; renewal keeps the epoch; a takeover waits for expiry and bumps it', async () => {
      const store = new LeaderStore(await db());
      const a = await store.acquire('a', null, 60_000);
      assert.equal(a, 1);
      assert.equal(await store.acquire('b', null, 60_000), null, 'b cannot take a live lease');
      assert.equal(await store.acquire('a', a, 60_000), a, 'renewal keeps the epoch');
      assert.equal(await store.acquire('a', 999, 60_000), null, 'a stale epoch is not a renewal');
      // Expire it (a short lease), then b takes over with a new epoch.
      assert.equal(await store.acquire('a', a, 1), a);
      const b = await waitFor('the lease to expire and b to take it', async () => (await store.acquire('b', null, 60_000)) ?? undefined, 30_000, 20);
      assert.equal(b, 2);
      assert.equal(await store.acquire('a', a, 60_000), null, 'the old holder cannot renew');
      assert.equal(await store.holds('a', a), false);
      assert.equal(await store.holds('b', b), true);
      await store.release('b', b);
      assert.equal(await store.acquire('a', a, 60_000), 3, 'a released lease is taken at once, with a new epoch');
    });

    test('a standby arms no schedule, and a deposed scheduler records no occurrence and dispatches nothing', async () => {
      const shared = await db();
      const schedules = new ScheduleStore(shared);
      const s = await schedules.create({ name: 'fenced', cron: '* * * * * *', timezone: null, project: 'p', spider: 's', version: null, target: { mode: 'auto' },
        args: {}, settings: {}, priority: 0, enabled: true, overlap: 'allow', missed: 'run_once', max_retries: 0 });
      // Ten occurrences already due, as after a takeover.
      await shared.run(`UPDATE schedules SET updated_at = ? WHERE id = ?`, [Date.now() - 10_000, s.id]);
      let dispatched = 0;
      const dispatcher = { dispatch: async () => { dispatched++; return []; } } as unknown as Dispatcher; // only dispatch() is reached
      const standby = new Scheduler(schedules, new RunStore(shared), dispatcher);
      await standby.reload(s.id); // an edit made through this master's API
      assert.equal(standby.armed, 0, 'a scheduler that was never started arms nothing');
      // A master deposed without knowing it yet: started, but every fenced write is refused.
      let refused = 0;
      standby.fence = async () => { refused++; throw new NotLeader(); };
      await standby.start();
      try {
        await waitFor('a wake past the catch-up to reach the fence', () => refused >= 3 || undefined, 30_000, 20);
      } finally {
        standby.stop();
      }
      assert.deepEqual(await schedules.fires(s.id), [], 'no missed or fired occurrence recorded');
      assert.equal(dispatched, 0);
      assert.equal((await schedules.get(s.id))!.last_fire_at, null, 'nothing claimed');
    });

    test('two masters: exactly one leads; a fenced write of the deposed one is refused and it steps down', async () => {
      const shared = await db();
      const mk = () => new Leadership(shared, { ttlMs: 1_500, renewMs: 200, url: () => null });
      const one = mk();
      const two = mk();
      const events: string[] = [];
      one.on('elected', (e) => events.push(`one elected ${e}`));
      one.on('deposed', () => events.push('one deposed'));
      two.on('elected', (e) => events.push(`two elected ${e}`));
      await one.start();
      await two.start();
      try {
        assert.equal(one.isLeader, true);
        assert.equal(two.isLeader, false);
        await assert.rejects(two.fenced(async () => 1), NotLeader);
        assert.equal(await one.fenced(async () => 42), 42);
        const status = await two.status(60_000);
        assert.equal(status.leader, false);
        assert.equal(status.leader_id, one.id);
        assert.deepEqual(status.masters.map((m) => m.id).sort(), [one.id, two.id].sort());
        // A third master takes the lease behind one's back, as if one had been paused past its
        // expiry: one's next fenced write finds out before its renewal does, is refused, and one
        // steps down.
        await shared.run(`UPDATE leader_lease SET holder = 'elsewhere', epoch = epoch + 1, expires_at = expires_at + 600000`);
        await assert.rejects(one.fenced(async () => 'written'), NotLeader);
        assert.equal(one.isLeader, false);
        assert.ok(events.includes('one deposed'), events.join(', '));
        // The third master dies (its lease ends): one of the two takes over, with a newer epoch.
        await shared.run(`UPDATE leader_lease SET expires_at = 0`);
        const next = await waitFor('a new leader', () => (one.isLeader ? one : two.isLeader ? two : undefined), 30_000, 20);
        assert.ok(next.epoch! > 1);
        assert.equal([one, two].filter((l) => l.isLeader).length, 1);
      } finally {
        await one.stop();
        await two.stop();
      }
    });

    test('a clean stop hands over at once', async () => {
      const shared = await db();
      const one = new Leadership(shared, { ttlMs: 60_000, renewMs: 100, url: () => null });
      const two = new Leadership(shared, { ttlMs: 60_000, renewMs: 100, url: () => null });
      await one.start();
      await two.start();
      assert.equal(one.isLeader, true);
      await one.stop();
      // The lease is 60 s: only the release lets two lead this soon.
      await waitFor('two to lead', () => two.isLeader || undefined, 30_000, 20);
      await two.stop();
    });
  });
}

test('leader duties start in order, stop in reverse, and never overlap', async () => {
  const log: string[] = [];
  const duty = (name: string) => ({
    name,
    start: async () => { log.push(`start ${name}`); await new Promise((r) => setImmediate(r)); },
    stop: async () => { log.push(`stop ${name}`); await new Promise((r) => setImmediate(r)); },
  });
  const d = new LeaderDuties([duty('a'), duty('b')]);
  void d.lead();
  void d.follow();
  void d.lead();
  await d.lead();
  await d.settled();
  assert.deepEqual(log, ['start a', 'start b', 'stop b', 'stop a', 'start a', 'start b']);
  assert.equal(d.active, true);
});

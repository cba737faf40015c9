// The stores of users, sessions, the login limit, alerts, schedules and services, run against
// SQLite AND PostgreSQL with the same cases (issue 12). Where a store promises "once" (a login
// attempt reserved, a firing opened, a mail claimed, a cron occurrence claimed), two connections
// to one database — two masters — race for it, and exactly one wins.
// Run: npx tsx --test --test-concurrency=1 test/store_auth_alerts.test.ts
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openMasterStore, type DatabaseLocation } from '../master/store/open_store.ts';
import { isUniqueViolation, type SqlDb } from '../master/store/sql_db.ts';
import { UserProblem, UserStore } from '../master/auth/users.ts';
import { LoginLimiter, SessionStore, loginKeys } from '../master/web/sessions.ts';
import { FiringStore, RuleStore, type RuleInput } from '../master/alerts/rule_store.ts';
import { Outbox } from '../master/alerts/outbox.ts';
import { ScheduleStore, type ScheduleInput } from '../master/schedules/schedule_store.ts';
import { ServiceStore, type ServiceInput } from '../master/services/service_store.ts';
import type { Hit } from '../master/alerts/rule_engine.ts';
import { tempDir, waitFor } from './helpers/slave_process.ts';
import { freshDatabaseUrl } from './helpers/postgres.ts';

const RULE: RuleInput = {
  name: 'Node offline', kind: 'node_offline', threshold: null, duration_seconds: 0, scope: 'all',
  scope_node: null, scope_project: null, scope_spider: null, recipients: ['ops@example.com', 'dev@example.com'], enabled: true,
};

const SCHEDULE: ScheduleInput = {
  name: 'nightly', cron: '0 3 * * *', timezone: null, project: 'shop', spider: 'prices', version: null, target: { mode: 'auto' },
  args: { a: '1' }, settings: {}, priority: 0, enabled: true, overlap: 'skip', missed: 'skip', max_retries: 2,
};

const SERVICE: ServiceInput = {
  name: 'feed', project: 'shop', spider: 'feed', version: null, args: {}, settings: {}, replicas: 2, max_per_node: null,
  labels: {}, max_unavailable: 1, max_runtime: null, max_memory: null,
};

function hit(ruleId: number, subjectKey: string): Hit {
  return { ruleId, subjectKey, title: `${subjectKey} offline`, link: null, value: null, threshold: null, since: Date.now(), detail: null };
}

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`${engine}: users, sessions, login limit, alerts, schedules, services`, () => {
    let loc: DatabaseLocation;
    /** Two connections to one database: two masters. */
    let db: SqlDb;
    let db2: SqlDb;

    before(async () => {
      loc = engine === 'sqlite' ? { kind: 'sqlite', file: join(tempDir('spiderplane-store-auth-'), 'master.db') } : { kind: 'postgres', url: await freshDatabaseUrl() };
      db = await openMasterStore(loc);
      // Several masters share PostgreSQL only; on SQLite the second "master" is the same connection
      // (its calls still interleave at every await).
      db2 = engine === 'postgres' ? await openMasterStore(loc) : db;
    });
    after(async () => {
      await db?.close();
      if (db2 !== db) await db2?.close();
    });

    test('users: create, unique names, verify, roles, order; a password changed on another master ends the remembered check', async () => {
      // Cost 4 (the default, 12, is checked below): ~250 ms of CPU a hash or check otherwise.
      const users = new UserStore(db, { bcryptRounds: 4 });
      const other = new UserStore(db2, { bcryptRounds: 4 });
      assert.equal(await users.count(), 0);
      const bob = await users.create('bob', 'bob-password-1', 'operator');
      await users.create('alice', 'alice-password-1', 'viewer');
      await assert.rejects(users.create('bob', 'another-password', 'viewer'), UserProblem);
      await assert.rejects(users.create('bad name', 'bob-password-1', 'viewer'), UserProblem);
      assert.equal(await users.count(), 2);
      assert.deepEqual((await users.all()).map((u) => u.username), ['alice', 'bob']);
      assert.equal((await users.get(bob.id))?.role, 'operator');
      assert.equal(await users.get(999_999), undefined);
      await users.setRole(bob.id, 'admin');
      assert.equal((await other.get(bob.id))?.role, 'admin', 'seen by the other master at once');
      assert.equal(await users.verify('bob', 'wrong-password'), null);
      assert.equal(await users.verify('nobody', 'bob-password-1'), null);
      assert.equal((await users.verify('bob', 'bob-password-1'))?.id, bob.id);
      assert.equal((await users.recentlyVerified('bob', 'bob-password-1'))?.id, bob.id, 'remembered after a check');
      await other.setPassword(bob.id, 'bob-password-2');
      assert.equal(await users.recentlyVerified('bob', 'bob-password-1'), null, 'the old password is not remembered once the hash changed');
      assert.equal(await users.verify('bob', 'bob-password-1'), null);
      assert.equal((await users.verify('bob', 'bob-password-2'))?.id, bob.id);
      // The cost: 12 unless the master says otherwise (--bcrypt-rounds); a hash checks at its own cost.
      const hashOf = async (name: string) => (await db.get<{ h: string }>(`SELECT password_hash AS h FROM users WHERE username = ?`, [name]))!.h;
      await new UserStore(db).create('cost12', 'cost12-password-1', 'viewer');
      assert.match(await hashOf('cost12'), /^\$2b\$12\$/);
      assert.match(await hashOf('alice'), /^\$2b\$04\$/);
      assert.equal((await users.verify('cost12', 'cost12-password-1'))?.username, 'cost12', 'a hash is checked at its own cost');
    });

    test('API tokens: shown once, found by hash, last use recorded, revoked per user, gone with the user', async () => {
      const users = new UserStore(db, { bcryptRounds: 4 });
      const carol = await users.create('carol', 'carol-password-1', 'operator');
      const dave = await users.create('dave', 'dave-password-1', 'viewer');
      const t1 = await users.createToken(carol.id, 'ci');
      const t2 = await users.createToken(carol.id, 'laptop');
      await assert.rejects(users.createToken(carol.id, ''), UserProblem);
      assert.match(t1, /^spt_/);
      assert.equal((await users.userForToken(t1))?.username, 'carol');
      assert.equal(await users.userForToken('spt_not-a-token'), null);
      const list = await users.tokens(carol.id);
      assert.deepEqual(list.map((t) => t.name), ['ci', 'laptop']);
      assert.ok(list[0]!.last_used_at !== null && list[1]!.last_used_at === null);
      assert.equal(await users.removeToken(dave.id, list[0]!.id), false, 'not dave\'s token');
      assert.equal(await users.removeToken(carol.id, list[0]!.id), true);
      assert.equal(await users.userForToken(t1), null);
      await users.remove(carol.id);
      assert.equal(await users.userForToken(t2), null, 'tokens go with their user');
      assert.deepEqual(await users.tokens(carol.id), []);
    });

    test('sessions: one per login, seen by every master, ended one, all but one, or all; idle ones expire', async () => {
      const users = new UserStore(db, { bcryptRounds: 4 });
      const erin = await users.create('erin', 'erin-password-1', 'viewer');
      const sessions = new SessionStore(db);
      const other = new SessionStore(db2);
      const a = await sessions.create(erin.id);
      const b = await sessions.create(erin.id);
      const c = await sessions.create(erin.id);
      const seen = await other.get(a.token);
      assert.deepEqual(seen, a.session, 'the cookie works on the other master, with its CSRF token');
      assert.notEqual(a.session.csrf, b.session.csrf);
      assert.equal(await sessions.get('not-a-token'), null);
      await sessions.destroy(a.session.tokenHash);
      assert.equal(await other.get(a.token), null);
      await sessions.destroyOthers(erin.id, b.session.tokenHash);
      assert.equal(await sessions.get(c.token), null);
      assert.ok(await sessions.get(b.token));
      // Idle for more than 12 hours: gone.
      await db.run(`UPDATE sessions SET seen_at = ? WHERE token_hash = ?`, [Date.now() - 13 * 3600_000, b.session.tokenHash]);
      assert.equal(await sessions.get(b.token), null);
      await sessions.create(erin.id);
      await sessions.create(erin.id);
      assert.equal(await sessions.destroyAll(erin.id), 2, 'the idle one was pruned by the next login');
    });

    test('login limit: of 60 parallel guesses from two masters, exactly 5 are let through; the right password then waits too', async () => {
      const limiters = [new LoginLimiter(db), new LoginLimiter(db2)];
      const keys = loginKeys('10.1.0.1', 'Frank');
      const waits = await Promise.all(Array.from({ length: 60 }, (_, i) => limiters[i % 2]!.attempt(keys)));
      assert.equal(waits.filter((w) => w === 0).length, 5, `waits: ${waits.join(',')}`);
      // At most the window (plus the few ms between two attempts' clocks).
      assert.ok(waits.every((w) => w === 0 || (w > 0 && w <= 15 * 60_000 + 1000)), `waits: ${waits.join(',')}`);
      assert.ok((await limiters[1]!.wait(keys)).waitMs > 0, 'the other master sees the wait');
      assert.ok((await limiters[0]!.wait(loginKeys('10.1.0.2', 'frank'))).waitMs > 0, 'the username is limited from any address, case-insensitively');
      assert.ok((await limiters[0]!.wait(loginKeys('10.1.0.1', 'grace'))).waitMs > 0, 'the address is limited too (60 tries are more than its 30)');
      assert.equal((await limiters[0]!.wait(loginKeys('10.1.0.9', 'grace'))).waitMs, 0, 'another user from another address is not');
      await limiters[0]!.succeed(keys);
      assert.equal((await limiters[1]!.wait(keys)).waitMs, 0, 'a success clears the keys');
      // Another user from the same address, with guesses 5 apart: only the user's budget limits.
      const ivan = loginKeys('10.1.0.3', 'ivan');
      const first = await Promise.all(Array.from({ length: 8 }, (_, i) => limiters[i % 2]!.attempt(ivan)));
      assert.equal(first.filter((w) => w === 0).length, 5);
    });

    test('login limit: an address gets 30 tries over all names; the count restarts after the window', async () => {
      const limiter = new LoginLimiter(db);
      const waits: number[] = [];
      for (let i = 0; i < 32; i++) waits.push(await limiter.attempt(loginKeys('10.2.0.1', `user${i}`)));
      assert.deepEqual(waits.map((w) => w === 0), [...Array(30).fill(true), false, false]);
      // A short window: the wait ends with it, and the count starts again.
      const quick = new LoginLimiter(db, 2, 30, 400);
      const k = loginKeys('10.3.0.1', 'heidi');
      assert.equal(await quick.attempt(k), 0);
      assert.equal(await quick.attempt(k), 0);
      assert.ok((await quick.attempt(k)) > 0);
      await waitFor('the window to pass', async () => ((await quick.wait(k)).waitMs === 0 ? true : undefined), 10_000, 50);
      await waitFor('the window to pass', async () => {
        const row = await db.get<{ last_at: number }>(`SELECT last_at FROM login_failures WHERE key = ?`, [k[1]!]);
        return row && Date.now() - row.last_at > 400 ? true : undefined;
      }, 10_000, 50);
      assert.equal(await quick.attempt(k), 0, 'a new window');
      const row = await db.get<{ count: number }>(`SELECT count FROM login_failures WHERE key = ?`, [k[1]!]);
      assert.equal(Number(row?.count), 1);
    });

    test('alert rules: create, read, update, remove; edits made on one master are read on the other', async () => {
      const rules = new RuleStore(db);
      const other = new RuleStore(db2);
      const r = await rules.create(RULE);
      assert.equal(r.enabled, true);
      assert.deepEqual(r.recipients, RULE.recipients);
      const cpu = await rules.create({ ...RULE, name: 'CPU', kind: 'cpu', threshold: 90.5, duration_seconds: 60, enabled: false, recipients: [] });
      assert.deepEqual((await other.all()).map((x) => [x.name, x.enabled, x.threshold]), [['Node offline', true, null], ['CPU', false, 90.5]]);
      const updated = await other.update(cpu.id, { ...RULE, name: 'CPU hot', kind: 'cpu', threshold: 95, enabled: true });
      assert.equal(updated?.name, 'CPU hot');
      assert.equal((await rules.get(cpu.id))?.threshold, 95);
      assert.equal(await rules.update(999_999, RULE), undefined);
      assert.equal(await rules.remove(cpu.id), true);
      assert.equal(await rules.remove(cpu.id), false);
      assert.equal(await rules.get(cpu.id), undefined);
    });

    test('firings: one open firing per rule and subject, even when two masters fire at once; notices once per recipient', async () => {
      const rules = new RuleStore(db);
      const rule = await rules.create({ ...RULE, name: 'offline 2' });
      const firings = [new FiringStore(db), new FiringStore(db2)];
      const ids = await Promise.all(Array.from({ length: 10 }, (_, i) => firings[i % 2]!.fire(rule, hit(rule.id, 'node:a'), rule.recipients)));
      const opened = ids.filter((x) => x !== null);
      assert.equal(opened.length, 1, `opened: ${ids.join(',')}`);
      const first = opened[0]!;
      assert.equal(await firings[0]!.fire(rule, hit(rule.id, 'node:a'), rule.recipients), null, 'still firing: no second firing');
      const b = await firings[0]!.fire(rule, hit(rule.id, 'node:b'), ['ops@example.com']);
      assert.ok(b !== null);
      assert.deepEqual([...((await firings[1]!.openMap()).get(rule.id) ?? [])].sort(), ['node:a', 'node:b']);
      const waiting = await firings[0]!.waitingRecipients();
      assert.deepEqual(waiting.map((w) => w.recipient).sort(), ['dev@example.com', 'ops@example.com']);
      assert.equal((await firings[0]!.waiting('ops@example.com')).length, 2);
      // Resolved: the recovery goes to whoever was told it fired; resolving again does nothing.
      assert.equal(await firings[1]!.resolve({ ruleId: rule.id, subjectKey: 'node:a', value: null, detail: 'back' }), first);
      assert.equal(await firings[0]!.resolve({ ruleId: rule.id, subjectKey: 'node:a', value: null, detail: 'back' }), null);
      const devNotices = await firings[0]!.waiting('dev@example.com');
      assert.deepEqual(devNotices.map((n) => n.event), ['fire', 'resolve']);
      const resolved = await firings[0]!.get(first);
      assert.equal(resolved?.state, 'resolved');
      assert.equal(resolved?.resolve_detail, 'back');
      // Firing again after the recovery is a new firing.
      const again = await firings[0]!.fire(rule, hit(rule.id, 'node:a'), rule.recipients);
      assert.ok(again !== null && again > first);
      // A notice is attached to one mail, once.
      const notice = devNotices[0]!;
      assert.equal(await firings[0]!.attach(notice.id, 41), true);
      assert.equal(await firings[1]!.attach(notice.id, 42), false);
      // History: newest first, filtered, counted.
      const h = await firings[0]!.history({ rule: rule.id, limit: 2, offset: 0 });
      assert.equal(h.total, 3);
      assert.deepEqual(h.firings.map((f) => f.id), [again, b]);
      assert.equal((await firings[0]!.history({ state: 'resolved', rule: rule.id, limit: 10, offset: 0 })).total, 1);
      await firings[0]!.closeRule(rule.id, 'the rule was deleted');
      assert.deepEqual(await firings[1]!.counts(), { firing: 0, resolved: 3 });
      assert.equal((await firings[0]!.openMap()).get(rule.id), undefined);
      // A notice in a transaction that fails is not written.
      await assert.rejects(firings[0]!.transaction(async () => {
        await firings[0]!.fire(rule, hit(rule.id, 'node:c'), ['ops@example.com']);
        throw new Error('rolled back');
      }), /rolled back/);
      assert.equal((await firings[0]!.openMap()).get(rule.id), undefined);
    });

    test('outbox: a mail is claimed once by any number of masters; retry, failure, recovery and pruning', async () => {
      const boxes = [new Outbox(db), new Outbox(db2)];
      const mail = { to: 'ops@example.com', subject: 's', text: 't', html: '<p>t</p>', headers: { 'X-A': '1' } };
      const id = await boxes[0]!.enqueue(mail);
      const claims = await Promise.all(Array.from({ length: 10 }, (_, i) => boxes[i % 2]!.claimDue()));
      const got = claims.filter((c) => c !== undefined);
      assert.equal(got.length, 1);
      assert.equal(got[0]!.id, id);
      assert.equal(got[0]!.state, 'sending');
      assert.equal(got[0]!.attempts, 1);
      assert.deepEqual(JSON.parse(got[0]!.headers), { 'X-A': '1' });
      await boxes[1]!.markRetry(id, 'connection refused', Date.now() + 60_000);
      assert.equal(await boxes[0]!.claimDue(), undefined, 'not due yet');
      assert.equal(await boxes[0]!.nextDueAt() !== null, true);
      const later = await boxes[0]!.claimDue(Date.now() + 120_000);
      assert.equal(later?.attempts, 2);
      await boxes[0]!.markFailed(id, '550 no such user');
      assert.equal((await boxes[1]!.get(id))?.state, 'failed');
      assert.equal(await boxes[1]!.retryFailed(id), true);
      assert.equal(await boxes[1]!.retryFailed(id), false, 'only a failed mail is retried by hand');
      const third = await boxes[1]!.claimDue();
      assert.equal(third?.attempts, 1, 'a hand retry starts the count again');
      // The master stopped while sending: queued again at the next start.
      assert.equal(await boxes[0]!.recoverInFlight(), 1);
      assert.match((await boxes[0]!.get(id))?.last_error ?? '', /the master stopped while sending it/);
      const sent = (await boxes[0]!.claimDue())!;
      await boxes[0]!.markSent(sent.id, '250 OK', Date.now() - 1000);
      const id2 = await boxes[0]!.enqueue({ ...mail, to: 'dev@example.com' });
      assert.deepEqual(await boxes[1]!.counts(), { queued: 1, sending: 0, sent: 1, failed: 0 });
      assert.deepEqual((await boxes[1]!.list({ limit: 10, offset: 0 })).map((m) => m.id), [id2, id]);
      assert.deepEqual((await boxes[1]!.list({ state: 'sent', limit: 10, offset: 0 })).map((m) => m.id), [id]);
      assert.ok((await boxes[1]!.lastMailTo('dev@example.com'))! > 0);
      assert.equal(await boxes[1]!.lastMailTo('nobody@example.com'), null);
      await boxes[0]!.pruneSent(Date.now());
      assert.equal(await boxes[0]!.get(id), undefined);
      assert.ok(await boxes[0]!.get(id2));
    });

    test('schedules: an occurrence is claimed once, even by two masters at once; fires recorded once, listed newest first', async () => {
      const stores = [new ScheduleStore(db), new ScheduleStore(db2)];
      const policy = { max_runtime: null, max_memory: null, nice: null, retries: 1, retry_delay: 30, keep_running: false };
      const s = await stores[0]!.create({ ...SCHEDULE, policy });
      assert.deepEqual(JSON.parse(s.run_policy), policy);
      assert.equal(s.enabled, 1);
      const occurrence = Date.UTC(2026, 0, 1, 3);
      const claims = await Promise.all(Array.from({ length: 20 }, (_, i) => stores[i % 2]!.claim(s.id, occurrence)));
      assert.equal(claims.filter(Boolean).length, 1);
      assert.equal(await stores[1]!.claim(s.id, occurrence - 86_400_000), false, 'an earlier occurrence is handled already');
      assert.equal(await stores[1]!.claim(s.id, occurrence + 86_400_000), true);
      assert.equal(await stores[0]!.hasFire(s.id, occurrence), false, 'claimed, not recorded (interrupted)');
      await stores[0]!.recordFire(s.id, occurrence, 'dispatched', 'job1@n1');
      await stores[1]!.recordFire(s.id, occurrence, 'dispatched', 'again');
      await stores[1]!.recordFire(s.id, occurrence + 86_400_000, 'skipped-overlap', null);
      assert.equal(await stores[0]!.hasFire(s.id, occurrence), true);
      const fires = await stores[0]!.fires(s.id);
      assert.deepEqual(fires.map((f) => [f.scheduled_for, f.outcome, f.detail]), [[occurrence + 86_400_000, 'skipped-overlap', null], [occurrence, 'dispatched', 'job1@n1']]);
      const after = await stores[1]!.firesAfter(0, 10);
      assert.deepEqual(after.map((f) => [f.schedule_name, f.project, f.spider, f.outcome]), [['nightly', 'shop', 'prices', 'dispatched'], ['nightly', 'shop', 'prices', 'skipped-overlap']]);
      assert.equal(await stores[0]!.lastFireId(), after[1]!.id);
      assert.deepEqual(await stores[0]!.firesAfter(after[1]!.id, 10), []);
      // Disabled: nothing is claimed. An edit without a policy keeps the stored one.
      const off = await stores[1]!.update(s.id, { ...SCHEDULE, enabled: false });
      assert.equal(off?.enabled, 0);
      assert.deepEqual(JSON.parse(off!.run_policy), policy);
      assert.equal(await stores[0]!.claim(s.id, occurrence + 2 * 86_400_000), false);
      const b = await stores[0]!.create({ ...SCHEDULE, name: 'a-first' });
      assert.deepEqual((await stores[0]!.all()).map((x) => x.name), ['a-first', 'nightly']);
      assert.equal(await stores[0]!.count(), 2);
      assert.deepEqual(await stores[1]!.names(), { [String(s.id)]: 'nightly', [String(b.id)]: 'a-first' });
      assert.equal(await stores[0]!.remove(b.id), true);
      assert.equal(await stores[0]!.remove(b.id), false);
      assert.equal(await stores[0]!.get(b.id), undefined);
    });

    test('services: unique names, found by id or name, scaled, state kept with its since, removed', async () => {
      const services = new ServiceStore(db);
      const other = new ServiceStore(db2);
      const s = await services.create(SERVICE, 'admin');
      assert.equal(s.status, 'converging');
      assert.equal(s.created_by, 'admin');
      await assert.rejects(other.create(SERVICE, 'admin'), (e) => isUniqueViolation(e));
      const numbered = await services.create({ ...SERVICE, name: '12345678901234567890' }, null);
      assert.equal((await other.find(String(s.id)))?.name, 'feed');
      assert.equal((await other.find('feed'))?.id, s.id);
      assert.equal((await other.find('12345678901234567890'))?.id, numbered.id, 'a number too big for an id is a name');
      assert.equal(await other.find('nope'), undefined);
      assert.deepEqual((await other.all()).map((x) => x.name), ['12345678901234567890', 'feed']);
      assert.equal((await other.scale(s.id, 5))?.replicas, 5);
      assert.equal(await other.scale(999_999, 5), undefined);
      const updated = await services.update(s.id, { ...SERVICE, labels: { zone: 'eu' }, max_runtime: 3600 });
      assert.deepEqual(JSON.parse(updated!.labels), { zone: 'eu' });
      await services.setState(updated!, { status: 'running', detail: '2 of 2', stable_version: 'v1', paused_version: null }, 1_000);
      const running = (await other.get(s.id))!;
      assert.deepEqual([running.status, running.status_detail, running.stable_version, running.status_since], ['running', '2 of 2', 'v1', 1_000]);
      await services.setState(running, { status: 'running', detail: '1 of 2', stable_version: 'v1', paused_version: null }, 2_000);
      assert.equal((await other.get(s.id))!.status_since, 1_000, 'the same status keeps its since');
      assert.equal(await services.remove(s.id), true);
      assert.equal(await other.get(s.id), undefined);
    });
  });
}

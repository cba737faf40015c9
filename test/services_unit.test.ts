// The service planner alone (master/services/reconcile_plan.ts): desired state + observed replicas
// + nodes -> start/stop actions, with no I/O and `now` given. The end-to-end behaviour (real master,
// real slaves, kill -9, master restart, rolls) is test/services.test.ts.
// Run: npx tsx --test test/services_unit.test.ts
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_PLAN_OPTIONS, planService, type PlanExit, type PlanNode, type PlanOptions, type PlanReplica, type PlanService } from '../master/services/reconcile_plan.ts';
import { labelsMatch, parseLabelList } from '../common/labels.ts';
import { evaluateServiceStatus, type AlertRule } from '../master/alerts/rule_engine.ts';

const NOW = 1_000_000;
const opts: PlanOptions = { ...DEFAULT_PLAN_OPTIONS, now: NOW };

const node = (id: number, over: Partial<PlanNode> = {}): PlanNode => ({
  id, name: `n${id}`, observed: true, eligible: true, misplacedReason: null, holds: new Set(['1', '2']), freeSlots: 20, ...over,
});
let seq = 0;
const rep = (nodeId: number, over: Partial<PlanReplica> = {}): PlanReplica => ({
  job: `j${++seq}`, nodeId, version: '1', state: 'running', createdAt: NOW - 100_000, startedAt: NOW - 99_000, stopping: false, ...over,
});
const svc = (over: Partial<PlanService> = {}): PlanService => ({
  replicas: 6, maxPerNode: null, maxUnavailable: 1, targetVersion: '1', stableVersion: '1', pausedVersion: null, ...over,
});
const exit = (over: Partial<PlanExit> = {}): PlanExit => ({ version: '1', createdAt: NOW - 5_000, startedAt: NOW - 4_000, endedAt: NOW - 3_000, expected: false, ...over });
const perNode = (starts: Array<{ nodeId: number }>) => {
  const m: Record<number, number> = {};
  for (const s of starts) m[s.nodeId] = (m[s.nodeId] ?? 0) + 1;
  return m;
};
const three = [node(1), node(2), node(3)];

describe('placement', () => {
  test('6 replicas over three empty nodes spread 2/2/2, on the target version', () => {
    const p = planService(svc({ stableVersion: null }), three, [], [], opts);
    assert.deepEqual(perNode(p.start), { 1: 2, 2: 2, 3: 2 });
    assert.ok(p.start.every((s) => s.version === '1'));
    assert.equal(p.stop.length, 0);
    assert.equal(p.status, 'converging');
  });

  test('scaling 6 -> 12 adds two per node; converged when all run', () => {
    const live = [rep(1), rep(1), rep(2), rep(2), rep(3), rep(3)];
    assert.equal(planService(svc(), three, live, [], opts).status, 'running');
    const p = planService(svc({ replicas: 12 }), three, live, [], opts);
    assert.deepEqual(perNode(p.start), { 1: 2, 2: 2, 3: 2 });
  });

  test('fills the emptiest node first (a node that joined gets the new replicas)', () => {
    const live = [rep(1), rep(1), rep(2), rep(2)];
    const p = planService(svc(), three, live, [], opts);
    assert.deepEqual(perNode(p.start), { 3: 2 });
  });

  test('at most K per node: what does not fit is unplaced, with the reason', () => {
    const p = planService(svc({ replicas: 8, maxPerNode: 2, stableVersion: null }), three, [], [], opts);
    assert.deepEqual(perNode(p.start), { 1: 2, 2: 2, 3: 2 });
    assert.equal(p.unplaced, 2);
    assert.equal(p.unplacedReason, 'at most 2 per node');
    assert.match(p.status, /^unplaced: at most 2 per node/);
  });

  test('a node over K after the limit was lowered gives up its surplus', () => {
    const live = [rep(1), rep(1), rep(1), rep(2)];
    const p = planService(svc({ replicas: 4, maxPerNode: 2 }), three, live, [], opts);
    assert.equal(p.stop.length, 1);
    assert.ok(live.filter((r) => r.nodeId === 1).some((r) => r.job === p.stop[0]!.job));
    assert.deepEqual(perNode(p.start), { 3: 1 });
  });

  test('capacity: replicas count against free slots; the rest is "unplaced: no capacity"', () => {
    const p = planService(svc({ replicas: 10, stableVersion: null }), [node(1, { freeSlots: 3 }), node(2, { freeSlots: 4 })], [], [], opts);
    assert.deepEqual(perNode(p.start), { 1: 3, 2: 4 });
    assert.equal(p.unplaced, 3);
    assert.equal(p.status, 'unplaced: no capacity');
  });

  test('ineligible nodes (label mismatch, offline) are never chosen; none eligible says why', () => {
    const p = planService(svc({ replicas: 2, stableVersion: null }), [node(1, { eligible: false }), node(2)], [], [], opts);
    assert.deepEqual(perNode(p.start), { 2: 2 });
    const none = planService(svc({ replicas: 2 }), [node(1, { eligible: false })], [], [], opts);
    assert.equal(none.unplacedReason, 'no online node matches the placement');
    const notHeld = planService(svc({ replicas: 1, targetVersion: '3', stableVersion: null }), [node(1)], [], [], opts);
    assert.equal(notHeld.unplacedReason, 'no eligible node holds version 3 yet');
  });

  test('replicas on a draining or no-longer-matching node move: stopped there, started elsewhere', () => {
    const live = [rep(1), rep(2)];
    const p = planService(svc({ replicas: 2 }), [node(1, { eligible: false, misplacedReason: 'is draining' }), node(2), node(3)], live, [], opts);
    assert.deepEqual(p.stop.map((s) => s.job), [live[0]!.job]);
    assert.match(p.stop[0]!.reason, /n1 is draining/);
    assert.deepEqual(perNode(p.start), { 3: 1 });
  });
});

describe('surplus and failover', () => {
  test('a node that comes back with its old copies: the surplus is stopped from the fullest nodes, ending 2/2/2', () => {
    // n3 died; its two replicas were restarted on n1 and n2 (3/3); n3 returned still running its two.
    const live = [rep(1), rep(1), rep(1), rep(2), rep(2), rep(2), rep(3), rep(3)];
    const p = planService(svc(), three, live, [], opts);
    assert.equal(p.start.length, 0);
    assert.equal(p.stop.length, 2);
    const stoppedOn = perNode(p.stop.map((s) => ({ nodeId: live.find((r) => r.job === s.job)!.nodeId! })));
    assert.deepEqual(stoppedOn, { 1: 1, 2: 1 });
  });

  test('scale to 0 stops every replica, and the status says so once they are gone', () => {
    const live = [rep(1), rep(2), rep(3, { state: 'pending', startedAt: null })];
    const p = planService(svc({ replicas: 0 }), three, live, [], opts);
    assert.equal(p.stop.length, 3);
    assert.ok(p.stop.every((s) => s.reason === 'scaled to 0'));
    assert.equal(planService(svc({ replicas: 0 }), three, [], [], opts).status, 'scaled to 0');
  });

  test('replicas already being stopped do not count, and are not stopped twice', () => {
    const live = [rep(1), rep(2), rep(3, { stopping: true })];
    const p = planService(svc({ replicas: 3 }), three, live, [], opts);
    assert.equal(p.stop.length, 0);
    assert.equal(p.start.length, 1);
  });

  test('replicas on a node not yet heard from (master restart) count, are never stopped, and get no new ones', () => {
    const live = [rep(1), rep(1), rep(2), rep(2), rep(3), rep(3), rep(3)];
    const p = planService(svc(), [node(1), node(2), node(3, { observed: false, eligible: false })], live, [], opts);
    assert.equal(p.start.length, 0);
    // one too many: taken from an observed node, never from n3
    assert.equal(p.stop.length, 1);
    assert.notEqual(live.find((r) => r.job === p.stop[0]!.job)!.nodeId, 3);
  });
});

describe('restarts, backoff and crash loops', () => {
  test('a replica that exited quickly is restarted after the base backoff', () => {
    const live = [rep(1), rep(2)];
    const justNow = planService(svc({ replicas: 3 }), three, live, [exit({ endedAt: NOW - 200 })], opts);
    assert.equal(justNow.start.length, 0, 'backoff of 1 s after the first quick exit');
    assert.equal(justNow.wakeAt, NOW - 200 + 1_000);
    const later = planService(svc({ replicas: 3 }), three, live, [exit({ endedAt: NOW - 1_500 })], opts);
    assert.equal(later.start.length, 1);
  });

  test('a replica that ran long and then exited is restarted without delay', () => {
    const p = planService(svc({ replicas: 3 }), three, [rep(1), rep(2)], [exit({ startedAt: NOW - 120_000, createdAt: NOW - 121_000, endedAt: NOW - 10 })], opts);
    assert.equal(p.start.length, 1);
  });

  test('stops we asked for and node losses are not crashes', () => {
    const p = planService(svc({ replicas: 3 }), three, [rep(1), rep(2)], [exit({ endedAt: NOW - 10, expected: true })], opts);
    assert.equal(p.start.length, 1);
  });

  test('the backoff doubles with each quick exit', () => {
    const exits = [0, 1, 2].map((i) => exit({ endedAt: NOW - 3_000 - i * 100 }));
    const p = planService(svc({ replicas: 3 }), three, [rep(1)], exits, opts);
    assert.equal(p.start.length, 0);
    assert.equal(p.wakeAt, NOW - 3_000 + 4_000);
  });

  test('5 quick exits within the window: crash-looping, one probe per backoff period, not a tight loop', () => {
    const exits = [0, 1, 2, 3, 4].map((i) => exit({ endedAt: NOW - 20_000 - i * 1000 }));
    const p = planService(svc({ replicas: 6 }), three, [], exits, opts);
    assert.equal(p.status, 'crash-looping');
    assert.equal(p.start.length, 1, 'a single probe');
    assert.ok(p.wakeAt! > NOW);
    const waiting = planService(svc({ replicas: 6 }), three, [], [...exits, exit({ endedAt: NOW - 100 })], opts);
    assert.equal(waiting.start.length, 0);
    assert.equal(waiting.status, 'crash-looping');
  });

  test('old crashes leave the window: the service recovers', () => {
    const exits = [0, 1, 2, 3, 4].map((i) => exit({ endedAt: NOW - 400_000 - i * 1000 }));
    const p = planService(svc({ replicas: 2 }), three, [rep(1), rep(2)], exits, opts);
    assert.equal(p.status, 'running');
  });
});

describe('rolling updates', () => {
  const sixOld = () => [rep(1), rep(1), rep(2), rep(2), rep(3), rep(3)];

  test('a new target version replaces at most max_unavailable per node at a time, and starts the new version', () => {
    const live = sixOld();
    const p = planService(svc({ targetVersion: '2' }), three, live, [], opts);
    assert.equal(p.status, 'rolling');
    assert.deepEqual(perNode(p.stop.map((s) => ({ nodeId: live.find((r) => r.job === s.job)!.nodeId! }))), { 1: 1, 2: 1, 3: 1 });
    assert.ok(p.stop.every((s) => /rolling to version 2/.test(s.reason)));
    assert.equal(p.start.length, 3);
    assert.ok(p.start.every((s) => s.version === '2'));
  });

  test('the roll waits while a node\'s new replica is not up yet (or one is still stopping)', () => {
    const live = [rep(1), rep(1, { version: '2', state: 'pending', startedAt: null }), rep(2), rep(2, { stopping: true }), rep(3), rep(3, { version: '2', startedAt: NOW - 500 })];
    const p = planService(svc({ targetVersion: '2' }), three, live, [], opts);
    assert.equal(p.stop.length, 0);
  });

  test('max_unavailable 2 replaces two per node at once', () => {
    const live = sixOld();
    const p = planService(svc({ targetVersion: '2', maxUnavailable: 2 }), three, live, [], opts);
    assert.equal(p.stop.length, 6);
  });

  test('a node that does not hold the new version yet keeps its old replicas', () => {
    const live = sixOld();
    const p = planService(svc({ targetVersion: '2' }), [node(1), node(2), node(3, { holds: new Set(['1']) })], live, [], opts);
    assert.equal(p.stop.length, 2);
    assert.ok(p.stop.every((s) => live.find((r) => r.job === s.job)!.nodeId !== 3));
  });

  test('when every replica runs the new version the roll is done: it becomes the stable version', () => {
    const live = [1, 1, 2, 2, 3, 3].map((n) => rep(n, { version: '2' }));
    const p = planService(svc({ targetVersion: '2' }), three, live, [], opts);
    assert.equal(p.status, 'running');
    assert.equal(p.stableVersion, '2');
  });

  test('new replicas that exit quickly pause the roll; the rest stay, and gaps are refilled on the stable version', () => {
    const live = [rep(1), rep(2), rep(2), rep(3), rep(3)];
    const exits = [exit({ version: '2', endedAt: NOW - 2_000, startedAt: NOW - 3_000 }), exit({ version: '2', endedAt: NOW - 1_500, startedAt: NOW - 2_500 })];
    const p = planService(svc({ targetVersion: '2' }), three, live, exits, { ...opts, backoffBaseMs: 100 });
    assert.equal(p.status, 'roll paused: new version crashing');
    assert.equal(p.pausedVersion, '2');
    assert.equal(p.stop.length, 0, 'no more old replicas are replaced');
    assert.deepEqual(p.start, [{ nodeId: 1, version: '1' }]);
    // later passes keep the pause (it is stored) even once the exits are old
    const later = planService(svc({ targetVersion: '2', pausedVersion: '2' }), three, [...live, rep(1)], [], opts);
    assert.equal(later.status, 'roll paused: new version crashing');
    assert.equal(later.stop.length, 0);
  });

  test('a newer version (or going back) lifts the pause', () => {
    const live = [1, 1, 2, 2, 3, 3].map((n) => rep(n));
    const p = planService(svc({ targetVersion: '3', pausedVersion: '2' }), [node(1, { holds: new Set(['1', '3']) }), node(2, { holds: new Set(['1', '3']) }), node(3, { holds: new Set(['1', '3']) })], live, [], opts);
    assert.equal(p.pausedVersion, null);
    assert.equal(p.status, 'rolling');
    const back = planService(svc({ targetVersion: '1', pausedVersion: '2' }), three, live, [], opts);
    assert.equal(back.pausedVersion, null);
    assert.equal(back.status, 'running');
  });
});

describe('labels', () => {
  test('parse and match', () => {
    assert.deepEqual({ ...parseLabelList('region=eu, tier=a') }, { region: 'eu', tier: 'a' });
    // names users choose are plain keys, never prototype tricks
    const odd = parseLabelList('__proto__=x,constructor=y');
    assert.equal(Object.keys(odd).length, 2);
    assert.equal(odd['__proto__'], 'x');
    assert.ok(!labelsMatch({}, { constructor: 'y' }), 'an inherited property is not a label');
    assert.ok(labelsMatch(odd, { constructor: 'y' }));
    assert.throws(() => parseLabelList('region'), /NAME=VALUE/);
    assert.throws(() => parseLabelList('re gion=eu'), /label name/);
    assert.ok(labelsMatch({ region: 'eu', tier: 'a' }, { region: 'eu' }));
    assert.ok(!labelsMatch({ region: 'us' }, { region: 'eu' }));
    assert.ok(labelsMatch({}, {}));
  });
});

describe('alert rule service_failing', () => {
  const rule = (over: Partial<AlertRule> = {}): AlertRule => ({
    id: 7, name: 'svc', kind: 'service_failing', threshold: null, duration_seconds: 0, scope: 'all', scope_node: null, scope_project: null, scope_spider: null,
    recipients: [], enabled: true, created_at: 0, updated_at: 0, ...over,
  });
  const status = (st: string) => ({ id: 3, name: 'workers', project: 'p', spider: 's', status: st, detail: '0/6 running', since: 5 });
  test('fires once when crash-looping or the roll is paused, resolves when running again; scoped by project', () => {
    const fired = evaluateServiceStatus([rule()], status('crash-looping'), new Map());
    assert.equal(fired.fire.length, 1);
    assert.equal(fired.fire[0]!.title, 'service workers crash-looping');
    assert.equal(fired.fire[0]!.subjectKey, 'service:3');
    const open = new Map([[7, new Set(['service:3'])]]);
    assert.equal(evaluateServiceStatus([rule()], status('roll paused: new version crashing'), open).fire.length, 0, 'already open');
    assert.equal(evaluateServiceStatus([rule()], status('rolling'), open).resolve.length, 1);
    assert.equal(evaluateServiceStatus([rule()], status('running'), new Map()).fire.length, 0);
    assert.equal(evaluateServiceStatus([rule({ scope: 'project', scope_project: 'other' })], status('crash-looping'), new Map()).fire.length, 0);
    assert.equal(evaluateServiceStatus([rule({ kind: 'job_failed' })], status('crash-looping'), new Map()).fire.length, 0);
  });
});

// The pure half of the service reconciler: desired state + observed replicas per node + node
// eligibility -> actions (start a replica on node X with version V, stop job Y). No I/O and no
// clock of its own (`now` is an input), so every rule below is unit-tested in
// test/services_unit.test.ts; master/services/reconciler.ts only gathers the inputs and executes.
//
// Guarantees of a plan:
// - never more than `replicas` live replicas are kept: a surplus (a node that came back with its
//   old copies, a scale down) is stopped, taken from the nodes holding the most;
// - starts spread evenly (fewest replicas of this service first), never past `max_per_node`, only
//   on eligible nodes that hold the version and have a free slot; what cannot be placed is counted
//   as unplaced with the reason;
// - a replica that exits is restarted after a backoff doubling with each quick exit (exit within
//   `quickExitMs` of its start); `crashLoopExits` quick exits inside `crashWindowMs` mark the
//   service crash-looping, and then only one replica is started per backoff period;
// - a version change rolls: per node at most `max_unavailable` replicas are being replaced at a
//   time; `rollFailExits` quick exits (within `rollMonitorMs`) of the new version pause the roll and
//   the rest keep (and restart on) the last stable version.

export type ReplicaState = 'dispatching' | 'pending' | 'running';

export interface PlanNode {
  id: number;
  name: string;
  /** online and heard from since the master started: its replicas are observed */
  observed: boolean;
  /** may take new replicas of this service: observed, not draining, carries the required labels */
  eligible: boolean;
  /** why its replicas must move away (draining, labels no longer match), or null */
  misplacedReason: string | null;
  /** versions of the service's project this node holds */
  holds: ReadonlySet<string>;
  /** slots left under its max_proc, after every run already there */
  freeSlots: number;
}

export interface PlanReplica {
  job: string;
  nodeId: number | null;
  version: string | null;
  state: ReplicaState;
  createdAt: number;
  startedAt: number | null;
  /** a stop was already asked for: it no longer counts */
  stopping: boolean;
}

export interface PlanExit {
  version: string | null;
  createdAt: number;
  startedAt: number | null;
  endedAt: number;
  /** stopped on purpose (cancelled) or lost with its node: not the replica's fault */
  expected: boolean;
}

export interface PlanService {
  replicas: number;
  maxPerNode: number | null;
  maxUnavailable: number;
  /** the version replicas should run (pinned, or the newest the master holds); null = none exists */
  targetVersion: string | null;
  stableVersion: string | null;
  pausedVersion: string | null;
}

export interface PlanOptions {
  now: number;
  /** an exit this soon after the start is a crash */
  quickExitMs: number;
  crashWindowMs: number;
  crashLoopExits: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** a new-version replica running this long counts as up, and the roll moves on */
  rollReadyMs: number;
  /** a new-version replica exiting within this of its start counts against the new version */
  rollMonitorMs: number;
  rollFailExits: number;
}

export const DEFAULT_PLAN_OPTIONS: Omit<PlanOptions, 'now'> = {
  quickExitMs: 60_000, crashWindowMs: 300_000, crashLoopExits: 5, backoffBaseMs: 1_000, backoffMaxMs: 60_000,
  rollReadyMs: 2_000, rollMonitorMs: 10_000, rollFailExits: 2,
};

export interface PlannedStart { nodeId: number; version: string }
export interface PlannedStop { job: string; reason: string }

export interface Plan {
  start: PlannedStart[];
  stop: PlannedStop[];
  /** replicas wanted that no node can take now */
  unplaced: number;
  unplacedReason: string | null;
  /** live replicas after the plan's stops (the ones started by it not included) */
  live: number;
  status: string;
  detail: string;
  stableVersion: string | null;
  pausedVersion: string | null;
  /** when to look again even without news (a restart backoff running out), or null */
  wakeAt: number | null;
}

const lifetime = (e: PlanExit) => e.endedAt - (e.startedAt ?? e.createdAt);

export function planService(svc: PlanService, nodes: readonly PlanNode[], replicas: readonly PlanReplica[], exits: readonly PlanExit[], opts: PlanOptions): Plan {
  const { now } = opts;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const stop: PlannedStop[] = [];
  const stopped = new Set<string>();
  const doStop = (r: PlanReplica, reason: string) => {
    if (stopped.has(r.job)) return;
    stopped.add(r.job);
    stop.push({ job: r.job, reason });
  };

  // ---- what exits say: crash loop, backoff, a failing new version ----
  const crashes = exits.filter((e) => !e.expected && e.endedAt > now - opts.crashWindowMs && lifetime(e) < opts.quickExitMs);
  const crashLooping = crashes.length >= opts.crashLoopExits;
  const lastCrash = crashes.reduce((t, e) => Math.max(t, e.endedAt), 0);
  const backoff = crashes.length ? Math.min(opts.backoffMaxMs, opts.backoffBaseMs * 2 ** (crashes.length - 1)) : 0;
  const startsAllowedAt = lastCrash ? lastCrash + backoff : 0;

  let pausedVersion = svc.pausedVersion;
  const target = svc.targetVersion;
  if (pausedVersion !== null && pausedVersion !== target) pausedVersion = null; // a newer (or another) version was asked for
  const rolling = target !== null && svc.stableVersion !== null && svc.stableVersion !== target;
  if (rolling && pausedVersion === null) {
    const newCrashes = exits.filter((e) => !e.expected && e.version === target && e.endedAt > now - opts.crashWindowMs && lifetime(e) < opts.rollMonitorMs);
    if (newCrashes.length >= opts.rollFailExits) pausedVersion = target;
  }
  const rollPaused = pausedVersion !== null && pausedVersion === target;
  // New replicas run the target, unless its roll is paused: then the last stable version.
  const startVersion = rollPaused ? svc.stableVersion ?? target : target;

  // ---- replicas that no longer count ----
  const active = replicas.filter((r) => !r.stopping);
  const stoppingCount = replicas.length - active.length;
  for (const r of active) {
    const node = r.nodeId === null ? undefined : byId.get(r.nodeId);
    if (node?.misplacedReason) doStop(r, `node ${node.name} ${node.misplacedReason}`);
  }
  let live = active.filter((r) => !stopped.has(r.job));
  const perNode = (list: readonly PlanReplica[]) => {
    const m = new Map<number, PlanReplica[]>();
    for (const r of list) {
      if (r.nodeId === null) continue;
      const g = m.get(r.nodeId);
      if (g) g.push(r);
      else m.set(r.nodeId, [r]);
    }
    return m;
  };
  // Which copy to give up first: an old version, then one not yet running, then the youngest.
  const stopOrder = (a: PlanReplica, b: PlanReplica) =>
    Number(a.version === startVersion) - Number(b.version === startVersion)
    || Number(a.state === 'running') - Number(b.state === 'running')
    || b.createdAt - a.createdAt;

  // ---- at most K per node ----
  if (svc.maxPerNode !== null) {
    for (const [nodeId, list] of perNode(live)) {
      const over = list.length - svc.maxPerNode;
      if (over > 0) [...list].sort(stopOrder).slice(0, over).forEach((r) => doStop(r, `more than ${svc.maxPerNode} on node ${byId.get(nodeId)?.name ?? nodeId}`));
    }
    live = live.filter((r) => !stopped.has(r.job));
  }

  // ---- surplus: stop from the nodes holding the most (only observed ones: the rest are unknown) ----
  let surplus = live.length - svc.replicas;
  if (surplus > 0) {
    const groups = [...perNode(live.filter((r) => r.nodeId === null || byId.get(r.nodeId)?.observed !== false)).values()].map((g) => g.sort(stopOrder));
    while (surplus > 0) {
      let best: PlanReplica[] | null = null;
      for (const g of groups) {
        if (!g.length) continue;
        if (!best || g.length > best.length || (g.length === best.length && g[0]!.version !== startVersion && best[0]!.version === startVersion)) best = g;
      }
      if (!best) break;
      doStop(best.shift()!, svc.replicas === 0 ? 'scaled to 0' : `surplus: ${svc.replicas} wanted`);
      surplus--;
    }
    live = live.filter((r) => !stopped.has(r.job));
  }

  // ---- roll: per node, replace at most max_unavailable at a time ----
  let rollLeft = 0;
  if (target !== null && !rollPaused) {
    const stoppingOn = new Map<number, number>();
    for (const r of replicas) if (r.stopping && r.nodeId !== null) stoppingOn.set(r.nodeId, (stoppingOn.get(r.nodeId) ?? 0) + 1);
    for (const [nodeId, list] of perNode(live)) {
      const node = byId.get(nodeId);
      const old = list.filter((r) => r.version !== target);
      rollLeft += old.length;
      if (!old.length || !node?.observed || !node.holds.has(target)) continue;
      const notReady = list.filter((r) => r.version === target && (r.state !== 'running' || r.startedAt === null || now - r.startedAt < opts.rollReadyMs)).length;
      const allowed = svc.maxUnavailable - notReady - (stoppingOn.get(nodeId) ?? 0);
      [...old].sort(stopOrder).slice(0, Math.max(0, allowed)).forEach((r) => doStop(r, `rolling to version ${target}`));
    }
    live = live.filter((r) => !stopped.has(r.job));
  }

  // ---- deficit: place new replicas, spread evenly ----
  const start: PlannedStart[] = [];
  let unplaced = 0;
  let unplacedReason: string | null = null;
  let wakeAt: number | null = null;
  let deficit = svc.replicas - live.length;
  if (deficit > 0 && startVersion !== null) {
    if (now < startsAllowedAt) {
      wakeAt = startsAllowedAt;
      deficit = 0;
    } else if (crashLooping) {
      deficit = Math.min(deficit, 1); // a probe per backoff period, never a tight loop
      wakeAt = now + backoff;
    }
    const count = new Map<number, number>();
    for (const [id, list] of perNode(live)) count.set(id, list.length);
    const free = new Map(nodes.map((n) => [n.id, n.freeSlots]));
    for (let i = 0; i < deficit; i++) {
      let best: PlanNode | null = null;
      for (const n of nodes) {
        if (!n.eligible || !n.holds.has(startVersion) || (free.get(n.id) ?? 0) <= 0) continue;
        if (svc.maxPerNode !== null && (count.get(n.id) ?? 0) >= svc.maxPerNode) continue;
        if (!best) { best = n; continue; }
        const d = (count.get(n.id) ?? 0) - (count.get(best.id) ?? 0) || (free.get(best.id) ?? 0) - (free.get(n.id) ?? 0) || (n.name < best.name ? -1 : 1);
        if (d < 0) best = n;
      }
      if (!best) {
        unplaced = deficit - i;
        unplacedReason = whyUnplaced(nodes, startVersion, svc.maxPerNode, count, free);
        break;
      }
      start.push({ nodeId: best.id, version: startVersion });
      count.set(best.id, (count.get(best.id) ?? 0) + 1);
      free.set(best.id, (free.get(best.id) ?? 0) - 1);
    }
  } else if (deficit > 0) {
    unplaced = deficit;
    unplacedReason = 'no version of the project exists';
  }

  // ---- status ----
  const running = live.filter((r) => r.state === 'running').length;
  const converged = !stop.length && !start.length && !unplaced && stoppingCount === 0 && live.length === svc.replicas && running === live.length && rollLeft === 0 && deficit <= 0;
  const stableVersion = converged && target !== null && !rollPaused ? target : svc.stableVersion;
  let status: string;
  if (crashLooping) status = 'crash-looping';
  else if (rollPaused) status = 'roll paused: new version crashing';
  else if (unplaced) status = `unplaced: ${unplacedReason}`;
  else if (rollLeft > 0) status = 'rolling';
  else if (converged) status = svc.replicas === 0 ? 'scaled to 0' : 'running';
  else status = 'converging';
  const detail = `${running}/${svc.replicas} running` + (rollLeft ? `, ${rollLeft} on an old version` : '') + (unplaced ? `, ${unplaced} unplaced (${unplacedReason})` : '')
    + (crashLooping ? `, ${crashes.length} quick exits in ${Math.round(opts.crashWindowMs / 1000)} s` : '') + (rollPaused ? `, version ${pausedVersion} paused, staying on ${svc.stableVersion}` : '')
    + (wakeAt !== null && start.length === 0 ? `, next start in ${Math.max(0, Math.ceil((wakeAt - now) / 1000))} s` : '');
  return { start, stop, unplaced, unplacedReason, live: live.length, status, detail, stableVersion, pausedVersion, wakeAt };
}

function whyUnplaced(nodes: readonly PlanNode[], version: string, maxPerNode: number | null, count: Map<number, number>, free: Map<number, number>): string {
  const eligible = nodes.filter((n) => n.eligible);
  if (!eligible.length) return nodes.some((n) => n.observed) ? 'no online node matches the placement' : 'no node online';
  const holding = eligible.filter((n) => n.holds.has(version));
  if (!holding.length) return `no eligible node holds version ${version} yet`;
  if (maxPerNode !== null && holding.every((n) => (count.get(n.id) ?? 0) >= maxPerNode)) return `at most ${maxPerNode} per node`;
  return 'no capacity';
}

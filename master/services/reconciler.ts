// The thin, I/O half of the service reconciler: each tick (every second, and at once when a run
// ends, a node changes or a service is edited) it reads the desired state (services), what runs
// (active replica runs, kept in step with every node's listjobs.json by the run tracker) and the
// nodes, asks reconcile_plan.ts what to do, and does it: starts fanned out to every node at once,
// stops sent in parallel and re-sent (escalating INT -> TERM -> KILL on the slave) until the
// replica is gone.
//
// Guarantee after a master restart: nothing is started until every node believed online has
// answered a heartbeat (or the offline window has passed), so replicas still running on the nodes
// are counted before the deficit is computed — a restart neither loses nor duplicates replicas.
import { ifLeader, unfenced, type Fence } from '../cluster/fence.ts';
import { EventEmitter } from 'node:events';
import { labelsMatch } from '../../common/labels.ts';
import type { NodeRegistry, NodeRow } from '../nodes/node_registry.ts';
import { nodeLabels } from '../nodes/node_registry.ts';
import type { Heartbeat } from '../nodes/heartbeat.ts';
import type { PackageRepo } from '../packages/package_repo.ts';
import type { Dispatcher } from '../runs/dispatcher.ts';
import { NO_POLICY } from '../runs/run_policy.ts';
import type { RunTracker } from '../runs/run_tracker.ts';
import type { RunRow, RunStore } from '../runs/run_store.ts';
import { DEFAULT_PLAN_OPTIONS, planService, type Plan, type PlanExit, type PlanNode, type PlanOptions, type PlanReplica } from './reconcile_plan.ts';
import type { ServiceRow, ServiceStore } from './service_store.ts';

const DEFAULT_CAPACITY = 4;
const RECANCEL_MS = 5_000;
const PER_NODE_CONCURRENCY = 16;

export interface ReconcilerOptions {
  tickMs: number;
  offlineAfterMs: number;
  plan?: Partial<Omit<PlanOptions, 'now'>>;
}

/** Events: 'status' (ServiceRow, previous status) when a service's status changes — e.g. to crash-looping. */
export class ServiceReconciler extends EventEmitter {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  /** A leader duty: idle until start() (a standby's events and kicks do nothing). */
  private stopped = true;
  private startedAt = Date.now();
  private readonly heard = new Set<number>();
  private readonly cancelSentAt = new Map<string, number>();
  /** the last plan of each service, for the API and the UI */
  readonly lastPlans = new Map<number, Plan>();

  constructor(
    private readonly services: ServiceStore,
    private readonly runs: RunStore,
    private readonly nodes: NodeRegistry,
    private readonly repo: PackageRepo,
    private readonly dispatcher: Dispatcher,
    private readonly tracker: RunTracker,
    private readonly heartbeat: Heartbeat,
    private readonly opts: ReconcilerOptions,
  ) {
    super();
  }

  /** Starting a replica is the leader's act (master/cluster/fence.ts). */
  fence: Fence = unfenced;

  start(): void {
    // Elected again (or for the first time): every node is observed afresh before it is judged.
    this.stopped = false;
    this.heard.clear();
    this.startedAt = Date.now();
    this.timer = setInterval(() => this.kick(), this.opts.tickMs);
    this.timer.unref();
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** A heartbeat of this node arrived: its replicas are observed. */
  heardFrom(nodeId: number): void {
    if (!this.heard.has(nodeId)) {
      this.heard.add(nodeId);
      this.kick();
    }
  }

  forgetNode(nodeId: number): void { this.heard.delete(nodeId); }

  /** Reconcile soon (coalesced: one pass at a time, one more queued at most). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass().catch((e) => console.error('[spiderplane-master] services: reconcile failed:', e)).finally(() => {
      this.running = null;
      if (this.again) {
        this.again = false;
        setImmediate(() => this.kick());
      }
    });
  }

  /** Resolves when a pass has run after this call (tests and the API's ?wait). */
  async settle(): Promise<void> {
    while (this.running) await this.running;
    if (this.stopped) return;
    this.kick();
    await this.running;
  }

  /** Every node believed online has answered since the master started, or the offline window is over. */
  private observedAll(all: readonly NodeRow[], now: number): boolean {
    return now - this.startedAt > this.opts.offlineAfterMs || all.every((n) => n.status !== 'online' || this.heard.has(n.id));
  }

  private async pass(): Promise<void> {
    const now = Date.now();
    const services = await this.services.all();
    const activeRuns = await this.runs.active();
    const replicasOf = new Map<number, RunRow[]>();
    for (const r of activeRuns) {
      if (r.service_id === null) continue;
      const list = replicasOf.get(r.service_id);
      if (list) list.push(r);
      else replicasOf.set(r.service_id, [r]);
    }
    // No service and no replica: nothing to reconcile, and every node's row need not be read (a
    // fleet's first heartbeats kick a pass each).
    if (services.length === 0 && replicasOf.size === 0) return;
    const allNodes = await this.nodes.all();

    // Replicas of services that no longer exist are stopped.
    const orphanStops: RunRow[] = [];
    const known = new Set(services.map((s) => s.id));
    for (const [sid, list] of replicasOf) if (!known.has(sid)) orphanStops.push(...list.filter((r) => !r.cancel_requested));

    if (!this.observedAll(allNodes, now)) {
      await this.stopRuns(orphanStops.map((r) => ({ run: r, reason: 'its service was removed' })));
      return;
    }

    // Free slots per node: its max_proc less what runs there (the heartbeat's count or ours, whichever is larger).
    const ours = new Map<number, number>();
    for (const r of activeRuns) if (r.node_id !== null) ours.set(r.node_id, (ours.get(r.node_id) ?? 0) + 1);
    const free = new Map(allNodes.map((n) => [n.id, (n.max_proc ?? DEFAULT_CAPACITY) - Math.max(n.running + n.pending, ours.get(n.id) ?? 0)]));

    const starts: Array<{ svc: ServiceRow; node: NodeRow; version: string }> = [];
    const nodeById = new Map(allNodes.map((n) => [n.id, n]));
    const stops: Array<{ run: RunRow; reason: string }> = orphanStops.map((r) => ({ run: r, reason: 'its service was removed' }));
    const planOpts: PlanOptions = { ...DEFAULT_PLAN_OPTIONS, ...this.opts.plan, now };

    for (const svc of services) {
      const required = JSON.parse(svc.labels) as Record<string, string>;
      const target = svc.version ?? await this.repo.newest(svc.project);
      const versions: string[] = [];
      for (const v of [target, svc.stable_version]) if (v !== null && (await this.repo.get(svc.project, v)) !== undefined) versions.push(v);
      const holders = new Map<string, Set<number>>();
      for (const v of versions) holders.set(v, await this.repo.nodesWith(svc.project, v));
      const planNodes: PlanNode[] = allNodes.map((n) => {
        const observed = n.status === 'online' && this.heard.has(n.id);
        const matches = labelsMatch(nodeLabels(n), required);
        return {
          id: n.id, name: n.name, observed,
          eligible: observed && !n.draining && matches,
          misplacedReason: !observed ? null : n.draining ? 'is draining' : !matches ? 'no longer carries the required labels' : null,
          holds: new Set(versions.filter((v) => holders.get(v)!.has(n.id))),
          freeSlots: free.get(n.id) ?? 0,
        };
      });
      const list = replicasOf.get(svc.id) ?? [];
      const replicas: PlanReplica[] = list.map((r) => ({
        job: r.job, nodeId: r.node_id, version: r.version, state: r.state as PlanReplica['state'], createdAt: r.created_at, startedAt: r.started_at, stopping: r.cancel_requested === 1,
      }));
      const exits: PlanExit[] = (await this.runs.endedReplicasSince(svc.id, now - planOpts.crashWindowMs)).map((r) => ({
        version: r.version, createdAt: r.created_at, startedAt: r.started_at, endedAt: r.ended_at ?? now,
        // Not a crash: stopped on purpose, or lost with its node (failed over by the master, or stopped by
        // its slave's lease or keeper when no master was heard: state finished, outcome lost).
        expected: r.cancel_requested === 1 || r.outcome === 'cancelled' || r.state === 'lost' || r.outcome === 'lost',
      }));
      const plan = planService({
        replicas: svc.replicas, maxPerNode: svc.max_per_node, maxUnavailable: svc.max_unavailable, targetVersion: target && versions.includes(target) ? target : null,
        stableVersion: svc.stable_version, pausedVersion: svc.paused_version,
      }, planNodes, replicas, exits, planOpts);
      this.lastPlans.set(svc.id, plan);
      for (const s of plan.start) {
        free.set(s.nodeId, (free.get(s.nodeId) ?? 0) - 1);
        starts.push({ svc, node: nodeById.get(s.nodeId)!, version: s.version });
      }
      const byJob = new Map(list.map((r) => [r.job, r]));
      for (const s of plan.stop) stops.push({ run: byJob.get(s.job)!, reason: s.reason });
      const before = svc.status;
      await this.services.setState(svc, { status: plan.status, detail: plan.detail, stable_version: plan.stableVersion, paused_version: plan.pausedVersion }, now);
      if (before !== plan.status) {
        console.log(`[spiderplane-master] service ${svc.name}: ${plan.status} (${plan.detail})`);
        const after = await this.services.get(svc.id);
        if (after) this.emit('status', after, before);
      }
    }

    // Stops already asked for are asked again (the slave escalates INT -> TERM -> KILL) until they end.
    const again: Array<{ run: RunRow; reason: string }> = [];
    for (const r of activeRuns) {
      if (r.service_id === null || !r.cancel_requested) continue;
      const sent = this.cancelSentAt.get(r.job) ?? 0;
      if (now - sent >= RECANCEL_MS) again.push({ run: r, reason: 'still running after a stop' });
    }
    const activeJobs = new Set(activeRuns.map((r) => r.job));
    for (const job of [...this.cancelSentAt.keys()]) if (!activeJobs.has(job)) this.cancelSentAt.delete(job);

    // Repeated stops are not waited for: a node that does not answer must not hold up the next pass.
    void this.stopRuns(again);
    await Promise.all([this.stopRuns(stops), this.startReplicas(starts)]);
  }

  private async stopRuns(list: Array<{ run: RunRow; reason: string }>): Promise<void> {
    const now = Date.now();
    await Promise.all(list.map(async ({ run }) => {
      this.cancelSentAt.set(run.job, now);
      await this.tracker.cancel(run).catch(() => undefined); // an unreachable node: asked again next pass, or failed over
    }));
    const touched = new Set(list.map((x) => x.run.node_id).filter((x): x is number => x !== null));
    for (const id of touched) void this.heartbeat.poll(id);
  }

  /** Starts on every node at once, up to PER_NODE_CONCURRENCY in flight per node. */
  private async startReplicas(list: Array<{ svc: ServiceRow; node: NodeRow; version: string }>): Promise<void> {
    const perNode = new Map<number, typeof list>();
    for (const s of list) {
      const q = perNode.get(s.node.id);
      if (q) q.push(s);
      else perNode.set(s.node.id, [s]);
    }
    await Promise.all([...perNode.values()].map(async (queue) => {
      const worker = async () => {
        for (let s = queue.shift(); s; s = queue.shift()) await this.startOne(s.svc, s.node, s.version);
      };
      await Promise.all(Array.from({ length: Math.min(PER_NODE_CONCURRENCY, queue.length) }, worker));
    }));
    for (const id of perNode.keys()) void this.heartbeat.poll(id);
  }

  private async startOne(svc: ServiceRow, node: NodeRow, version: string): Promise<void> {
    // Only the leader starts replicas: a deposed one (paused, then resumed) starts none.
    if ((await ifLeader(this.fence, async () => true)) === undefined) return;
    try {
      await this.dispatcher.dispatch({
        project: svc.project, spider: svc.spider, version, args: JSON.parse(svc.args) as Record<string, string>,
        settings: JSON.parse(svc.settings) as Record<string, string>, priority: 0, target: { mode: 'node', node: node.name },
        scheduleId: null, retriesLeft: 0, createdBy: `service:${svc.name}`, serviceId: svc.id,
        // The service's limits go to the slave as _max_runtime / _max_memory; no failure retries:
        // restarting a replica is the reconciler's job (with its own backoff).
        policy: { ...NO_POLICY, max_runtime: svc.max_runtime, max_memory: svc.max_memory, retries: 0 },
      });
    } catch (e) {
      console.error(`[spiderplane-master] service ${svc.name}: cannot start a replica on ${node.name}: ${(e as Error).message}`);
    }
  }

  /** Replicas of a service per node: desired share vs running, for the API and the UI (from `replicas` when given). */
  async replicaCounts(svc: ServiceRow, replicas?: readonly RunRow[]): Promise<Array<{ node: string; running: number; pending: number; stopping: number; versions: Record<string, number> }>> {
    const out = new Map<string, { node: string; running: number; pending: number; stopping: number; versions: Record<string, number> }>();
    for (const r of replicas ?? await this.runs.activeReplicas()) {
      if (r.service_id !== svc.id) continue;
      const key = r.node ?? '?';
      const row = out.get(key) ?? { node: key, running: 0, pending: 0, stopping: 0, versions: {} };
      if (r.cancel_requested) row.stopping++;
      else if (r.state === 'running') row.running++;
      else row.pending++;
      if (!r.cancel_requested) row.versions[r.version ?? '?'] = (row.versions[r.version ?? '?'] ?? 0) + 1;
      out.set(key, row);
    }
    return [...out.values()].sort((a, b) => (a.node < b.node ? -1 : 1));
  }
}

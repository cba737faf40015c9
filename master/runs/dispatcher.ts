import { randomUUID } from 'node:crypto';
import { isUniqueViolation } from '../store/sql_db.ts';
import { sanitizeVersion } from '../../common/names.ts';
import type { NodeRegistry, NodeRow } from '../nodes/node_registry.ts';
import type { NodeClient } from '../nodes/node_client.ts';
import type { PackageRepo } from '../packages/package_repo.ts';
import type { LoadBalancer } from './load_balancer.ts';
import type { RunRow, RunStore } from './run_store.ts';
import { limitParams, type RunPolicy } from './run_policy.ts';
import type { RunPolicyStore } from './run_policy_store.ts';

export type TargetMode = 'auto' | 'node' | 'nodes' | 'all';
export interface Target { mode: TargetMode; node?: string; count?: number }

export interface DispatchRequest {
  project: string;
  spider: string;
  version: string | null;
  args: Record<string, string>;
  settings: Record<string, string>;
  priority: number;
  target: Target;
  scheduleId: number | null;
  retriesLeft: number;
  createdBy: string | null;
  retryOf?: RunRow;
  /** e.g. the node a lost run came from */
  excludeNodeIds?: ReadonlySet<number>;
  /** keep this job id (the master's schedule.json with an explicit jobid) */
  jobid?: string;
  /** limits sent to the slave and the failure-retry policy (run_policy.ts); none = the slave's defaults, no retries */
  policy?: RunPolicy;
  /** which failure retry this dispatch is (0 = a first run; a failover keeps its run's number) */
  retryNumber?: number;
  /** the spider service this run is a replica of */
  serviceId?: number;
}

/** Refused before anything was sent: the message says why (Scrapyd's wording where one exists). */
export class DispatchError extends Error {}

const DEFAULT_CAPACITY = 4;

/** Sends runs to nodes: resolves the version, picks the target nodes, records every attempt. */
export class Dispatcher {
  constructor(
    private readonly runs: RunStore,
    private readonly repo: PackageRepo,
    private readonly nodes: NodeRegistry,
    private readonly balancer: LoadBalancer,
    private readonly clientFor: (node: NodeRow) => NodeClient,
    readonly policies?: RunPolicyStore,
  ) {}

  /** Online, not draining, holding the version, not excluded. */
  async eligible(project: string, version: string, exclude?: ReadonlySet<number>): Promise<NodeRow[]> {
    const holders = await this.repo.nodesWith(project, version);
    return (await this.nodes.all()).filter((n) => n.status === 'online' && !n.draining && holders.has(n.id) && !exclude?.has(n.id));
  }

  async resolveVersion(project: string, version: string | null, spider: string): Promise<string> {
    if ((await this.repo.versions(project)).length === 0) throw new DispatchError(`project '${project}' not found`);
    const v = version === null ? (await this.repo.newest(project))! : sanitizeVersion(version);
    if (!(await this.repo.get(project, v))) throw new DispatchError(`version '${version}' not found`);
    const spiders = await this.repo.spiders(project, v);
    if (spiders !== null && !spiders.includes(spider)) throw new DispatchError(`spider '${spider}' not found`);
    return v;
  }

  /** Call inside `balancer.choosing` (the loads read must include every committed dispatch). */
  private async choose(req: DispatchRequest, version: string): Promise<NodeRow[]> {
    const pool = await this.eligible(req.project, version, req.excludeNodeIds);
    const all = await this.nodes.all();
    const why = () => {
      if (all.length === 0) return 'no nodes are registered';
      const online = all.filter((n) => n.status === 'online');
      if (online.length === 0) return 'no node is online';
      if (online.every((n) => n.draining)) return 'every online node is draining';
      return `no online node holds ${req.project} version ${version} yet (deploy it first)`;
    };
    const asCandidates = pool.map((n) => ({ id: n.id, name: n.name, running: n.running, pending: n.pending, capacity: n.max_proc ?? DEFAULT_CAPACITY }));
    switch (req.target.mode) {
      case 'auto': {
        if (!pool.length) throw new DispatchError(`cannot dispatch: ${why()}`);
        return (await this.balancer.pick(asCandidates, 1)).map((c) => pool.find((n) => n.id === c.id)!);
      }
      case 'node': {
        const node = all.find((n) => n.name === (req.target.node ?? ''));
        if (!node) throw new DispatchError(`node '${req.target.node}' not found`);
        if (!pool.some((n) => n.id === node.id)) {
          const reason = node.status !== 'online' ? `is ${node.status}` : node.draining ? 'is draining' : `does not hold ${req.project} version ${version}`;
          throw new DispatchError(`cannot dispatch to node '${node.name}': it ${reason}`);
        }
        return [node];
      }
      case 'nodes': {
        const count = req.target.count ?? 1;
        if (pool.length < count) throw new DispatchError(`cannot dispatch to ${count} nodes: only ${pool.length} eligible${pool.length ? '' : ` (${why()})`}`);
        return (await this.balancer.pick(asCandidates, count)).map((c) => pool.find((n) => n.id === c.id)!);
      }
      case 'all': {
        if (!pool.length) throw new DispatchError(`cannot dispatch: ${why()}`);
        return pool;
      }
    }
  }

  async dispatch(req: DispatchRequest): Promise<RunRow[]> {
    const version = await this.resolveVersion(req.project, req.version, req.spider);
    // The choice and the runs it makes are one step (across masters too); the sending is not.
    const picked = await this.balancer.choosing(async () => {
      const chosen = await this.choose(req, version);
      if (req.jobid !== undefined && chosen.length > 1) throw new DispatchError('a fixed jobid can only be used with a single target node');
      const out: Array<{ node: NodeRow; run: RunRow }> = [];
      for (const node of chosen) out.push({ node, run: await this.record(node, req, version, req.jobid) });
      return out;
    });
    return Promise.all(picked.map(({ node, run }) => this.sendTo(node, run, req, version, new Set([node.id]))));
  }

  /** The run row of a dispatch to this node, before anything is sent (it counts in the node's load from now on). */
  private async record(node: NodeRow, req: DispatchRequest, version: string, jobid?: string): Promise<RunRow> {
    if (jobid !== undefined && await this.runs.byJob(jobid)) throw new DispatchError(`jobid '${jobid}' is already used by another run`);
    let run: RunRow;
    try {
      run = await this.runs.insert({
        job: jobid ?? randomUUID().replace(/-/g, ''), project: req.project, spider: req.spider, version, args: req.args, settings: req.settings,
        priority: req.priority, node_id: node.id, node: node.name, schedule_id: req.scheduleId, retry_of: req.retryOf?.id ?? null,
        attempt: (req.retryOf?.attempt ?? 0) + 1, retries_left: req.retriesLeft, created_by: req.createdBy,
        service_id: req.serviceId ?? null,
      });
    } catch (e) {
      // Another master (or request) took the same jobid between the check and the insert.
      if (jobid !== undefined && isUniqueViolation(e)) throw new DispatchError(`jobid '${jobid}' is already used by another run`);
      throw e;
    }
    if (req.policy) await this.policies?.setPolicy(run.id, req.policy, req.retryNumber ?? 0);
    return run;
  }

  private async sendTo(node: NodeRow, run: RunRow, req: DispatchRequest, version: string, tried: Set<number>): Promise<RunRow> {
    try {
      await this.clientFor(node).schedule({
        project: req.project, spider: req.spider, version, jobid: run.job, priority: req.priority, args: req.args, settings: req.settings,
        ...(req.policy ? limitParams(req.policy) : {}),
        // Whether the slave stops it when its master lease expires: only runs this master replaces
        // elsewhere — a run with failover retries left, or a service replica (the reconciler
        // restarts it on another node).
        keepRunning: req.policy?.keep_running === true || (req.retriesLeft <= 0 && req.serviceId == null),
      });
      await this.runs.markDispatched(run.id);
      return (await this.runs.get(run.id))!;
    } catch (e) {
      const failed = await this.runs.update(run, { state: 'failed', outcome: 'failed', ended_at: Date.now(), note: `node ${node.name} refused or could not be reached: ${(e as Error).message}` });
      // With automatic targeting, another node may take it.
      if (req.target.mode === 'auto' && tried.size < 3) {
        const next = await this.balancer.choosing(async () => {
          const pool = await this.eligible(req.project, version, new Set([...tried, ...(req.excludeNodeIds ?? [])]));
          const [c] = await this.balancer.pick(pool.map((n) => ({ id: n.id, name: n.name, running: n.running, pending: n.pending, capacity: n.max_proc ?? DEFAULT_CAPACITY })), 1);
          const nextNode = c ? pool.find((n) => n.id === c.id)! : undefined;
          return nextNode ? { node: nextNode, run: await this.record(nextNode, req, version) } : undefined;
        });
        if (next) {
          tried.add(next.node.id);
          return this.sendTo(next.node, next.run, req, version, tried);
        }
      }
      return failed;
    }
  }
}

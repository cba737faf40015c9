import { EventEmitter } from 'node:events';
import type { SqlDb } from '../store/sql_db.ts';
import { DeploymentStore } from './deployment_store.ts';
import type { NodeRegistry, NodeRow } from '../nodes/node_registry.ts';
import type { NodeClient } from '../nodes/node_client.ts';
import type { PackageRepo } from './package_repo.ts';

export interface DeploymentTarget {
  node: string;
  state: 'pending' | 'ok' | 'failed';
  message: string | null;
  spiders: number | null;
  started_at: number | null;
  finished_at: number | null;
  /** While the node works on it: 'building environment' when it builds the version's dependencies. */
  phase?: string | null;
  /** The tail of that build's log (pip's or npm's output) as it grows. */
  build_log?: string | null;
}

export interface Deployment {
  id: number;
  project: string;
  version: string;
  reason: string;
  created_at: number;
  finished_at: number | null;
  targets: DeploymentTarget[];
}

/**
 * Pushes versions to nodes in parallel and records each node's result as it arrives, so progress
 * can be watched while a deploy runs. Also brings a node that (re)joins up to date.
 */
export class Deployer extends EventEmitter {
  /** Live progress of targets in flight, by "deploymentId:nodeName" (memory only: it lasts as long as the push). */
  private readonly live = new Map<string, { phase: string; build_log: string }>();
  private readonly store: DeploymentStore;

  constructor(
    db: SqlDb,
    private readonly repo: PackageRepo,
    private readonly nodes: NodeRegistry,
    private readonly clientFor: (node: NodeRow, timeoutMs?: number) => NodeClient,
  ) {
    super();
    this.store = new DeploymentStore(db);
  }

  /** A deploy cut short by a master restart is recorded as such, never left "in progress" (called at start). */
  async recoverInterrupted(now = Date.now()): Promise<void> {
    await this.store.failUnfinished('the master restarted during the deploy', now);
  }

  /** Starts a deploy to the given nodes; resolves to its id once recorded, with a promise of its end. */
  async deploy(project: string, version: string, targets: NodeRow[], reason: string): Promise<{ id: number; done: Promise<Deployment> }> {
    const id = await this.store.create(project, version, reason, targets);
    const done = (async () => {
      // Backed by the stored file: no copy of a package of up to --max-upload-mb on the event loop.
      const data = await this.repo.blob(project, version);
      await Promise.all(targets.map((n) => this.pushTo(id, n, project, version, data)));
      await this.store.finish(id);
      const result = (await this.get(id))!;
      this.emit('deployed', result);
      return result;
    })();
    return { id, done };
  }

  /**
   * While a node takes a version that declares requirements, asks it every second which build it
   * runs for the version and keeps the build log's tail, for the deploy page ("building environment").
   */
  private async followBuild(id: number, node: NodeRow, project: string, version: string): Promise<() => void> {
    if (!(await this.repo.requirements(project, version))) return () => undefined;
    const liveKey = `${id}:${node.name}`;
    let stopped = false;
    let timer: NodeJS.Timeout | null = null;
    const tick = async () => {
      try {
        const b = await this.clientFor(node, 5_000).envBuild(project, version);
        if (!stopped && b) this.live.set(liveKey, { phase: 'building environment', build_log: b.log });
      } catch {
        // the node is busy or older: the deploy's own result still arrives
      }
      if (!stopped) timer = setTimeout(() => void tick(), 1000);
    };
    timer = setTimeout(() => void tick(), 200);
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      this.live.delete(liveKey);
    };
  }

  private async pushTo(id: number, node: NodeRow, project: string, version: string, data: Blob): Promise<void> {
    let stopFollowing: () => void = () => undefined;
    try {
      await this.store.targetStarted(id, node.id);
      stopFollowing = await this.followBuild(id, node, project, version);
      const spiders = await this.clientFor(node, 300_000).addVersion(project, version, data);
      await this.repo.nodeHas(node.id, project, version);
      await this.store.targetFinished(id, node.id, 'ok', null, spiders);
      if ((await this.repo.spiders(project, version)) === null) {
        const list = await this.clientFor(node).listSpiders(project, version).catch(() => null);
        if (list) await this.repo.setSpiders(project, version, list);
      }
    } catch (e) {
      await this.store.targetFinished(id, node.id, 'failed', (e as Error).message, null).catch((e2) => console.error('[spiderplane-master] recording a deploy failed:', e2));
    } finally {
      stopFollowing();
    }
  }


  private withLive(id: number, targets: DeploymentTarget[]): DeploymentTarget[] {
    return targets.map((t) => {
      const l = t.state === 'pending' ? this.live.get(`${id}:${t.node}`) : undefined;
      return { ...t, phase: l?.phase ?? null, build_log: l?.build_log ?? null };
    });
  }

  async get(id: number): Promise<Deployment | undefined> {
    if (!Number.isSafeInteger(id)) return undefined;
    const d = await this.store.get(id);
    return d ? { ...d, targets: this.withLive(id, await this.store.targets(id)) } : undefined;
  }

  async recent(project: string | null, limit = 20): Promise<Deployment[]> {
    const out: Deployment[] = [];
    for (const d of await this.store.recent(project, limit)) out.push({ ...d, targets: await this.store.targets(d.id) });
    return out;
  }

  /**
   * Brings a node that came online (or was added) in line with the master: learns what it has,
   * pushes every version it lacks, and removes what was deleted cluster-wide while it was away.
   */
  async reconcile(node: NodeRow): Promise<void> {
    const client = this.clientFor(node);
    const onNode = new Set(await client.listProjects());
    for (const t of await this.repo.tombstones()) {
      if (!onNode.has(t.project)) continue;
      if (t.version === '*') {
        await client.delProject(t.project).catch(() => undefined);
        onNode.delete(t.project);
      } else if ((await client.listVersions(t.project)).includes(t.version)) {
        await client.delVersion(t.project, t.version).catch(() => undefined);
      }
    }
    const pushes: Promise<Deployment>[] = [];
    for (const project of await this.repo.projects()) {
      const there = onNode.has(project) ? new Set(await client.listVersions(project)) : new Set<string>();
      await this.repo.nodeLacksProject(node.id, project);
      for (const version of await this.repo.versions(project)) {
        if (there.has(version)) await this.repo.nodeHas(node.id, project, version);
        else pushes.push((await this.deploy(project, version, [node], 'node-joined')).done);
      }
    }
    await Promise.all(pushes);
  }

  /** Deletes a version (or, with version null, a project) on every online node. */
  async deleteEverywhere(project: string, version: string | null): Promise<Array<{ node: string; ok: boolean; message: string | null }>> {
    const online = (await this.nodes.all()).filter((n) => n.status === 'online');
    return Promise.all(online.map(async (n) => {
      try {
        const c = this.clientFor(n);
        if (version === null) await c.delProject(project);
        else await c.delVersion(project, version);
        return { node: n.name, ok: true, message: null };
      } catch (e) {
        return { node: n.name, ok: false, message: (e as Error).message };
      }
    }));
  }
}

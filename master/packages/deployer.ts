import { EventEmitter } from 'node:events';
import type { Db } from '../../common/sqlite.ts';
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
  private readonly s;
  /** Live progress of targets in flight, by "deploymentId:nodeName" (memory only: it lasts as long as the push). */
  private readonly live = new Map<string, { phase: string; build_log: string }>();

  constructor(
    db: Db,
    private readonly repo: PackageRepo,
    private readonly nodes: NodeRegistry,
    private readonly clientFor: (node: NodeRow, timeoutMs?: number) => NodeClient,
  ) {
    super();
    this.s = {
      create: db.prepare(`INSERT INTO deployments (project, version, reason, created_at) VALUES (?, ?, ?, ?)`),
      target: db.prepare(`INSERT INTO deployment_targets (deployment_id, node_id, node, state) VALUES (?, ?, ?, 'pending')`),
      start: db.prepare(`UPDATE deployment_targets SET started_at = ? WHERE deployment_id = ? AND node_id = ?`),
      finishTarget: db.prepare(`UPDATE deployment_targets SET state = ?, message = ?, spiders = ?, finished_at = ? WHERE deployment_id = ? AND node_id = ?`),
      finish: db.prepare(`UPDATE deployments SET finished_at = ? WHERE id = ?`),
      get: db.prepare(`SELECT * FROM deployments WHERE id = ?`),
      targets: db.prepare(`SELECT node, state, message, spiders, started_at, finished_at FROM deployment_targets WHERE deployment_id = ? ORDER BY node`),
      recent: db.prepare(`SELECT * FROM deployments WHERE (? IS NULL OR project = ?) ORDER BY id DESC LIMIT ?`),
      interrupted: db.prepare(`SELECT id FROM deployments WHERE finished_at IS NULL`),
      failPending: db.prepare(`UPDATE deployment_targets SET state = 'failed', message = 'the master restarted during the deploy', finished_at = ? WHERE deployment_id = ? AND state = 'pending'`),
    };
    // A deploy cut short by a master restart is recorded as such, never left "in progress".
    for (const { id } of this.s.interrupted.all() as Array<{ id: number }>) {
      this.s.failPending.run(Date.now(), id);
      this.s.finish.run(Date.now(), id);
    }
  }

  /** Starts a deploy to the given nodes; returns its id at once and a promise of its end. */
  deploy(project: string, version: string, targets: NodeRow[], reason: string): { id: number; done: Promise<Deployment> } {
    const id = Number(this.s.create.run(project, version, reason, Date.now()).lastInsertRowid);
    for (const n of targets) this.s.target.run(id, n.id, n.name);
    const done = (async () => {
      // Backed by the stored file: no copy of a package of up to --max-upload-mb on the event loop.
      const data = await this.repo.blob(project, version);
      await Promise.all(targets.map((n) => this.pushTo(id, n, project, version, data)));
      this.s.finish.run(Date.now(), id);
      const result = this.get(id)!;
      this.emit('deployed', result);
      return result;
    })();
    return { id, done };
  }

  /**
   * While a node takes a version that declares requirements, asks it every second which build it
   * runs for the version and keeps the build log's tail, for the deploy page ("building environment").
   */
  private followBuild(id: number, node: NodeRow, project: string, version: string): () => void {
    if (!this.repo.requirements(project, version)) return () => undefined;
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
    this.s.start.run(Date.now(), id, node.id);
    const stopFollowing = this.followBuild(id, node, project, version);
    try {
      const spiders = await this.clientFor(node, 300_000).addVersion(project, version, data);
      this.repo.nodeHas(node.id, project, version);
      this.s.finishTarget.run('ok', null, spiders, Date.now(), id, node.id);
      if (this.repo.spiders(project, version) === null) {
        const list = await this.clientFor(node).listSpiders(project, version).catch(() => null);
        if (list) this.repo.setSpiders(project, version, list);
      }
    } catch (e) {
      this.s.finishTarget.run('failed', (e as Error).message, null, Date.now(), id, node.id);
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

  get(id: number): Deployment | undefined {
    const d = this.s.get.get(id) as Omit<Deployment, 'targets'> | undefined;
    return d ? { ...d, targets: this.withLive(id, this.s.targets.all(id) as DeploymentTarget[]) } : undefined;
  }

  recent(project: string | null, limit = 20): Deployment[] {
    return (this.s.recent.all(project, project, limit) as Array<Omit<Deployment, 'targets'>>).map((d) => ({ ...d, targets: this.s.targets.all(d.id) as DeploymentTarget[] }));
  }

  /**
   * Brings a node that came online (or was added) in line with the master: learns what it has,
   * pushes every version it lacks, and removes what was deleted cluster-wide while it was away.
   */
  async reconcile(node: NodeRow): Promise<void> {
    const client = this.clientFor(node);
    const onNode = new Set(await client.listProjects());
    for (const t of this.repo.tombstones()) {
      if (!onNode.has(t.project)) continue;
      if (t.version === '*') {
        await client.delProject(t.project).catch(() => undefined);
        onNode.delete(t.project);
      } else if ((await client.listVersions(t.project)).includes(t.version)) {
        await client.delVersion(t.project, t.version).catch(() => undefined);
      }
    }
    const pushes: Promise<Deployment>[] = [];
    for (const project of this.repo.projects()) {
      const there = onNode.has(project) ? new Set(await client.listVersions(project)) : new Set<string>();
      this.repo.nodeLacksProject(node.id, project);
      for (const version of this.repo.versions(project)) {
        if (there.has(version)) this.repo.nodeHas(node.id, project, version);
        else pushes.push(this.deploy(project, version, [node], 'node-joined').done);
      }
    }
    await Promise.all(pushes);
  }

  /** Deletes a version (or, with version null, a project) on every online node. */
  async deleteEverywhere(project: string, version: string | null): Promise<Array<{ node: string; ok: boolean; message: string | null }>> {
    const online = this.nodes.all().filter((n) => n.status === 'online');
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

import type { SqlDb } from '../store/sql_db.ts';
import type { Deployment, DeploymentTarget } from './deployer.ts';

type DeploymentRow = Omit<Deployment, 'targets'>;

/** Every SQL statement about deployments: one row per deploy, one per node it went to. */
export class DeploymentStore {
  constructor(private readonly db: SqlDb) {}

  /** Records a deploy and its targets (all pending) in one transaction; its id. */
  create(project: string, version: string, reason: string, targets: ReadonlyArray<{ id: number; name: string }>, now = Date.now()): Promise<number> {
    return this.db.tx(async () => {
      const id = await this.db.insert(`INSERT INTO deployments (project, version, reason, created_at) VALUES (?, ?, ?, ?)`, [project, version, reason, now]);
      for (const n of targets) await this.db.run(`INSERT INTO deployment_targets (deployment_id, node_id, node, state) VALUES (?, ?, ?, 'pending')`, [id, n.id, n.name]);
      return id;
    });
  }

  async targetStarted(id: number, nodeId: number, now = Date.now()): Promise<void> {
    await this.db.run(`UPDATE deployment_targets SET started_at = ? WHERE deployment_id = ? AND node_id = ?`, [now, id, nodeId]);
  }

  async targetFinished(id: number, nodeId: number, state: 'ok' | 'failed', message: string | null, spiders: number | null, now = Date.now()): Promise<void> {
    await this.db.run(`UPDATE deployment_targets SET state = ?, message = ?, spiders = ?, finished_at = ? WHERE deployment_id = ? AND node_id = ?`,
      [state, message, spiders, now, id, nodeId]);
  }

  async finish(id: number, now = Date.now()): Promise<void> {
    await this.db.run(`UPDATE deployments SET finished_at = ? WHERE id = ?`, [now, id]);
  }

  /** Deploys never finished (their master stopped): their pending targets failed, each deploy finished. */
  async failUnfinished(message: string, now = Date.now()): Promise<number> {
    const open = await this.db.all<{ id: number }>(`SELECT id FROM deployments WHERE finished_at IS NULL`);
    for (const { id } of open) {
      await this.db.tx(async () => {
        await this.db.run(`UPDATE deployment_targets SET state = 'failed', message = ?, finished_at = ? WHERE deployment_id = ? AND state = 'pending'`, [message, now, id]);
        await this.finish(id, now);
      });
    }
    return open.length;
  }

  get(id: number): Promise<DeploymentRow | undefined> {
    return this.db.get<DeploymentRow>(`SELECT * FROM deployments WHERE id = ?`, [id]);
  }

  targets(id: number): Promise<DeploymentTarget[]> {
    return this.db.all<DeploymentTarget>(`SELECT node, state, message, spiders, started_at, finished_at FROM deployment_targets WHERE deployment_id = ? ORDER BY node`, [id]);
  }

  recent(project: string | null, limit: number): Promise<DeploymentRow[]> {
    return project === null
      ? this.db.all<DeploymentRow>(`SELECT * FROM deployments ORDER BY id DESC LIMIT ?`, [limit])
      : this.db.all<DeploymentRow>(`SELECT * FROM deployments WHERE project = ? ORDER BY id DESC LIMIT ?`, [project, limit]);
  }
}

import type { SqlDb } from '../store/sql_db.ts';

/** A node's own dispatches as the load balancer counts them. */
export interface DispatchCounts {
  /** runs created for it since its last heartbeat was requested (the heartbeat does not count them yet) */
  sinceHeartbeat: number;
  /** runs created for it in the last `recentMs` (the tie-break) */
  recent: number;
}

/**
 * The load balancer's accounting, in the database so every master sharing it targets with the same
 * view (issue 12). A dispatch is its run row (created_at, node_id): nothing else to write, and it
 * is counted from the moment its transaction commits. Each node's heartbeat_at is the request time
 * of its newest heartbeat, which already counts every dispatch made before it. `choosing` holds
 * dispatch_lock's row for a whole choice-and-insert, so two masters (or two requests) never choose
 * on the same counts: a burst spreads instead of piling on the node that looked idle.
 */
export class DispatchLoadStore {
  constructor(private readonly db: SqlDb) {}

  /** Runs `fn` in one transaction holding the dispatch lock; the runs it inserts are counted by the next choice. */
  choosing<T>(fn: () => Promise<T>): Promise<T> {
    return this.db.tx(async () => {
      await this.db.run(`UPDATE dispatch_lock SET dispatches = dispatches + 1 WHERE id = 1`);
      return fn();
    });
  }

  /** The counts of these nodes (a node without runs in the window counts 0). */
  async counts(nodeIds: readonly number[], now: number, recentMs: number, windowMs: number): Promise<Map<number, DispatchCounts>> {
    const out = new Map<number, DispatchCounts>(nodeIds.map((id) => [id, { sinceHeartbeat: 0, recent: 0 }]));
    if (nodeIds.length === 0) return out;
    // The window bounds the read (runs_created); dispatches older than it are long in a heartbeat.
    const rows = await this.db.all<{ node_id: number; since_heartbeat: number; recent: number }>(
      `SELECT runs.node_id AS node_id,
              SUM(CASE WHEN runs.created_at >= COALESCE(ndl.heartbeat_at, 0) THEN 1 ELSE 0 END) AS since_heartbeat,
              SUM(CASE WHEN runs.created_at > ? THEN 1 ELSE 0 END) AS recent
       FROM runs ${this.db.sql.indexedBy('runs_created')} LEFT JOIN node_dispatch_load ndl ON ndl.node_id = runs.node_id
       WHERE runs.created_at >= ? AND ${this.db.sql.inJsonArray('runs.node_id', 'int')}
       GROUP BY runs.node_id`,
      [now - recentMs, now - windowMs, JSON.stringify(nodeIds)],
    );
    for (const r of rows) out.set(r.node_id, { sinceHeartbeat: Number(r.since_heartbeat), recent: Number(r.recent) });
    return out;
  }

  /** A heartbeat requested at `requestedAt` reported the node's running and pending (an older one changes nothing). */
  async heartbeat(nodeId: number, requestedAt: number): Promise<void> {
    await this.db.run(`INSERT INTO node_dispatch_load (node_id, heartbeat_at) VALUES (?, ?)
                       ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = ${this.db.sql.greatest('node_dispatch_load.heartbeat_at', 'excluded.heartbeat_at')}`,
    [nodeId, Math.round(requestedAt)]);
  }

  async forget(nodeId: number): Promise<void> {
    await this.db.run(`DELETE FROM node_dispatch_load WHERE node_id = ?`, [nodeId]);
  }
}

import type { Db } from '../../common/sqlite.ts';
import type { NodeMetrics } from '../../common/types.ts';

export type NodeStatus = 'online' | 'offline' | 'unknown';

export interface NodeRow {
  id: number;
  name: string;
  url: string;
  username: string | null;
  password: string | null;
  source: 'announced' | 'added';
  status: NodeStatus;
  draining: number;
  extensions: number;
  max_proc: number | null;
  running: number;
  pending: number;
  metrics: string | null;
  last_ok_at: number | null;
  last_error: string | null;
  /** first failed heartbeat since the last good one (NULL while heartbeats succeed) */
  failing_since: number | null;
  status_since: number;
  added_at: number;
  /** JSON {name: value}: announced by the slave (--label) or set through the API */
  labels: string;
}

/** A node as the API shows it: no password, parsed metrics. */
export interface NodeView {
  name: string;
  url: string;
  source: string;
  status: NodeStatus;
  status_since: number;
  draining: boolean;
  extensions: boolean;
  max_proc: number | null;
  running: number;
  pending: number;
  last_heartbeat_at: number | null;
  last_error: string | null;
  /** first failed heartbeat since the last good one, epoch ms; null while the node answers */
  failing_since: number | null;
  metrics: NodeMetrics | null;
  has_credentials: boolean;
  labels: Record<string, string>;
}

export function nodeLabels(r: NodeRow): Record<string, string> {
  try {
    return JSON.parse(r.labels || '{}') as Record<string, string>;
  } catch {
    return {};
  }
}

export function nodeView(r: NodeRow): NodeView {
  return {
    name: r.name, url: r.url, source: r.source, status: r.status, status_since: r.status_since, draining: r.draining === 1,
    extensions: r.extensions === 1, max_proc: r.max_proc, running: r.running, pending: r.pending, last_heartbeat_at: r.last_ok_at,
    last_error: r.last_error, failing_since: r.failing_since ?? null, metrics: r.metrics ? (JSON.parse(r.metrics) as NodeMetrics) : null, has_credentials: r.username !== null,
    labels: nodeLabels(r),
  };
}

type Sample = { node_id: number; time: number; cpu_percent: number | null; load1: number | null; mem_percent: number | null; disk_max: number | null; rx_bps: number | null; tx_bps: number | null; running: number; pending: number };

/** Samples wait at most this long to be written with the others that came in meanwhile. */
const SAMPLE_FLUSH_MS = 1000;

/**
 * Every SQL statement about nodes, their status history and their metric samples. Metric samples
 * are written in batches (one transaction per second for the whole fleet), not one commit per
 * heartbeat; reads of samples flush first.
 */
export class NodeRegistry {
  private readonly s;
  private queued: Sample[] = [];
  private flushTimer: NodeJS.Timeout | null = null;

  constructor(private readonly db: Db) {
    this.s = {
      all: db.prepare(`SELECT * FROM nodes ORDER BY name`),
      byName: db.prepare(`SELECT * FROM nodes WHERE name = ?`),
      byId: db.prepare(`SELECT * FROM nodes WHERE id = ?`),
      byUrl: db.prepare(`SELECT * FROM nodes WHERE url = ?`),
      insert: db.prepare(`INSERT INTO nodes (name, url, username, password, source, max_proc, status_since, added_at)
                          VALUES (@name, @url, @username, @password, @source, @max_proc, @now, @now)`),
      updateAnnounce: db.prepare(`UPDATE nodes SET url = @url, max_proc = COALESCE(@max_proc, max_proc) WHERE id = @id`),
      remove: db.prepare(`DELETE FROM nodes WHERE id = ?`),
      setLabels: db.prepare(`UPDATE nodes SET labels = ? WHERE id = ?`),
      drain: db.prepare(`UPDATE nodes SET draining = ? WHERE id = ?`),
      heartbeatOk: db.prepare(`UPDATE nodes SET last_ok_at = @now, last_error = NULL, failing_since = NULL, running = @running, pending = @pending,
                               max_proc = COALESCE(@max_proc, max_proc), metrics = @metrics, extensions = @extensions WHERE id = @id RETURNING *`),
      heartbeatFail: db.prepare(`UPDATE nodes SET last_error = @error, failing_since = COALESCE(failing_since, @now) WHERE id = @id`),
      setStatus: db.prepare(`UPDATE nodes SET status = ?, status_since = ? WHERE id = ?`),
      event: db.prepare(`INSERT INTO node_events (node_id, node, time, status, reason) VALUES (?, ?, ?, ?, ?)`),
      events: db.prepare(`SELECT node, time, status, reason FROM node_events WHERE node_id = ? ORDER BY time DESC, id DESC LIMIT ?`),
      sample: db.prepare(`INSERT INTO node_metrics (node_id, time, cpu_percent, load1, mem_percent, disk_max, rx_bps, tx_bps, running, pending)
                          VALUES (@node_id, @time, @cpu_percent, @load1, @mem_percent, @disk_max, @rx_bps, @tx_bps, @running, @pending)`),
      samples: db.prepare(`SELECT time, cpu_percent, load1, mem_percent, COALESCE(disk_max, (SELECT MAX(json_extract(d.value, '$.used_percent')) FROM json_each(node_metrics.disk) AS d)) AS disk_max,
                           rx_bps, tx_bps, running, pending FROM node_metrics WHERE node_id = ? AND time >= ? ORDER BY time`),
    };
    this.writeSamples = db.transaction((rows: Sample[]) => { for (const r of rows) this.s.sample.run(r); });
  }

  private readonly writeSamples: (rows: Sample[]) => void;

  /** Writes the queued metric samples in one transaction (also on close and before a read). */
  flushSamples(): void {
    if (this.flushTimer) { clearTimeout(this.flushTimer); this.flushTimer = null; }
    if (!this.queued.length) return;
    const rows = this.queued;
    this.queued = [];
    this.writeSamples(rows);
  }

  all(): NodeRow[] { return this.s.all.all() as NodeRow[]; }
  byName(name: string): NodeRow | undefined { return this.s.byName.get(name) as NodeRow | undefined; }
  byId(id: number): NodeRow | undefined { return this.s.byId.get(id) as NodeRow | undefined; }
  byUrl(url: string): NodeRow | undefined { return this.s.byUrl.get(url) as NodeRow | undefined; }

  add(n: { name: string; url: string; username: string | null; password: string | null; source: 'announced' | 'added'; max_proc: number | null }): NodeRow {
    const now = Date.now();
    const id = Number(this.s.insert.run({ ...n, now }).lastInsertRowid);
    this.s.event.run(id, n.name, now, 'unknown', n.source === 'announced' ? 'announced itself' : 'added');
    return this.byId(id)!;
  }

  updateAnnounce(id: number, url: string, maxProc: number | null): void { this.s.updateAnnounce.run({ id, url, max_proc: maxProc }); }
  remove(id: number): void { this.s.remove.run(id); }
  setLabels(id: number, labels: Record<string, string>): void { this.s.setLabels.run(JSON.stringify(labels), id); }
  setDraining(id: number, draining: boolean): void { this.s.drain.run(draining ? 1 : 0, id); }

  /** Records a good heartbeat; returns the node's row as it now stands (undefined: the node was removed). */
  recordHeartbeat(id: number, h: { now: number; running: number; pending: number; maxProc: number | null; metrics: NodeMetrics | null }): NodeRow | undefined {
    const row = this.s.heartbeatOk.get({ id, now: h.now, running: h.running, pending: h.pending, max_proc: h.maxProc, metrics: h.metrics ? JSON.stringify(h.metrics) : null, extensions: h.metrics ? 1 : 0 });
    if (!row) return undefined;
    const m = h.metrics;
    let diskMax: number | null = null;
    for (const d of m?.disks ?? []) if (diskMax === null || d.used_percent > diskMax) diskMax = d.used_percent;
    this.queued.push({
      node_id: id, time: h.now, cpu_percent: m?.cpu_percent ?? null, load1: m?.load[0] ?? null, mem_percent: m?.memory.used_percent ?? null,
      disk_max: diskMax, rx_bps: m?.network.rx_bytes_per_sec ?? null, tx_bps: m?.network.tx_bytes_per_sec ?? null, running: h.running, pending: h.pending,
    });
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        try { this.flushSamples(); } catch (e) { console.error('[spiderplane-master] writing metric samples failed:', e); }
      }, SAMPLE_FLUSH_MS);
      this.flushTimer.unref();
    }
    return row as NodeRow;
  }

  /** A failed heartbeat; the first one after a good heartbeat starts `failing_since`. */
  recordFailure(id: number, error: string, now = Date.now()): void { this.s.heartbeatFail.run({ error, id, now }); }

  setStatus(node: NodeRow, status: NodeStatus, reason: string, now: number): void {
    this.db.transaction(() => {
      this.s.setStatus.run(status, now, node.id);
      this.s.event.run(node.id, node.name, now, status, reason);
    })();
  }

  events(id: number, limit = 50): Array<{ node: string; time: number; status: string; reason: string | null }> {
    return this.s.events.all(id, limit) as Array<{ node: string; time: number; status: string; reason: string | null }>;
  }

  samples(id: number, since: number): unknown[] {
    this.flushSamples();
    return this.s.samples.all(id, since);
  }
}

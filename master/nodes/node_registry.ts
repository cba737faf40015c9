import type { SqlDb, SqlValue } from '../store/sql_db.ts';
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
/** Samples per multi-row INSERT (one statement, not one per row: one round trip on PostgreSQL). */
const SAMPLE_CHUNK = 50;
const SAMPLE_COLUMNS = '(node_id, time, cpu_percent, load1, mem_percent, disk_max, rx_bps, tx_bps, running, pending)';
const sampleValues = (r: Sample): SqlValue[] => [r.node_id, r.time, r.cpu_percent, r.load1, r.mem_percent, r.disk_max, r.rx_bps, r.tx_bps, r.running, r.pending];
const INSERT_SAMPLE = `INSERT INTO node_metrics ${SAMPLE_COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
const INSERT_SAMPLES = `INSERT INTO node_metrics ${SAMPLE_COLUMNS} VALUES ${Array.from({ length: SAMPLE_CHUNK }, () => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`;

/**
 * The fullest mount of a raw sample: its disk_max, or (rows written before that column existed)
 * the largest used_percent in its JSON [{mount, used_percent}].
 */
export function sampleDiskMax(db: SqlDb): string {
  const fromJson = db.dialect === 'sqlite'
    ? `(SELECT MAX(json_extract(d.value, '$.used_percent')) FROM json_each(node_metrics.disk) AS d)`
    : `(SELECT MAX((d ->> 'used_percent')::double precision) FROM json_array_elements(node_metrics.disk::json) AS d)`;
  return `COALESCE(node_metrics.disk_max, ${fromJson})`;
}

/**
 * Every SQL statement about nodes, their status history and their metric samples. Metric samples
 * are written in batches (one transaction per second for the whole fleet), not one commit per
 * heartbeat; reads of samples flush first.
 */
export class NodeRegistry {
  private queued: Sample[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  /** The last flush's write: the next one (and a read of samples) waits for it. */
  private flushed: Promise<void> = Promise.resolve();

  constructor(private readonly db: SqlDb) {}

  /** Writes the queued metric samples in one transaction (also on close and before a read). */
  flushSamples(): Promise<void> {
    if (this.flushTimer) { clearTimeout(this.flushTimer); this.flushTimer = null; }
    const rows = this.queued;
    this.queued = [];
    const write = this.flushed.then(() => (rows.length ? this.writeSamples(rows) : undefined));
    this.flushed = write.catch(() => undefined);
    return write;
  }

  private writeSamples(rows: Sample[]): Promise<void> {
    return this.db.tx(async () => {
      let i = 0;
      for (; i + SAMPLE_CHUNK <= rows.length; i += SAMPLE_CHUNK) await this.db.run(INSERT_SAMPLES, rows.slice(i, i + SAMPLE_CHUNK).flatMap(sampleValues));
      for (; i < rows.length; i++) await this.db.run(INSERT_SAMPLE, sampleValues(rows[i]!));
    });
  }

  all(): Promise<NodeRow[]> { return this.db.all<NodeRow>(`SELECT * FROM nodes ORDER BY name`); }
  byName(name: string): Promise<NodeRow | undefined> { return this.db.get<NodeRow>(`SELECT * FROM nodes WHERE name = ?`, [name]); }
  byId(id: number): Promise<NodeRow | undefined> { return this.db.get<NodeRow>(`SELECT * FROM nodes WHERE id = ?`, [id]); }
  byUrl(url: string): Promise<NodeRow | undefined> { return this.db.get<NodeRow>(`SELECT * FROM nodes WHERE url = ?`, [url]); }

  async add(n: { name: string; url: string; username: string | null; password: string | null; source: 'announced' | 'added'; max_proc: number | null }): Promise<NodeRow> {
    const now = Date.now();
    const id = await this.db.tx(async () => {
      const id = await this.db.insert(`INSERT INTO nodes (name, url, username, password, source, max_proc, status_since, added_at)
                          VALUES (@name, @url, @username, @password, @source, @max_proc, @now, @now)`, { ...n, now });
      await this.event(id, n.name, now, 'unknown', n.source === 'announced' ? 'announced itself' : 'added');
      return id;
    });
    return (await this.byId(id))!;
  }

  private async event(id: number, name: string, time: number, status: NodeStatus, reason: string): Promise<void> {
    await this.db.run(`INSERT INTO node_events (node_id, node, time, status, reason) VALUES (?, ?, ?, ?, ?)`, [id, name, time, status, reason]);
  }

  async updateAnnounce(id: number, url: string, maxProc: number | null): Promise<void> {
    await this.db.run(`UPDATE nodes SET url = @url, max_proc = COALESCE(@max_proc, max_proc) WHERE id = @id`, { id, url, max_proc: maxProc });
  }
  async remove(id: number): Promise<void> { await this.db.run(`DELETE FROM nodes WHERE id = ?`, [id]); }
  async setLabels(id: number, labels: Record<string, string>): Promise<void> { await this.db.run(`UPDATE nodes SET labels = ? WHERE id = ?`, [JSON.stringify(labels), id]); }
  async setDraining(id: number, draining: boolean): Promise<void> { await this.db.run(`UPDATE nodes SET draining = ? WHERE id = ?`, [draining ? 1 : 0, id]); }

  /** Records a good heartbeat; returns the node's row as it now stands (undefined: the node was removed). */
  async recordHeartbeat(id: number, h: { now: number; running: number; pending: number; maxProc: number | null; metrics: NodeMetrics | null }): Promise<NodeRow | undefined> {
    const row = await this.db.get<NodeRow>(`UPDATE nodes SET last_ok_at = @now, last_error = NULL, failing_since = NULL, running = @running, pending = @pending,
                               max_proc = COALESCE(@max_proc, max_proc), metrics = @metrics, extensions = @extensions WHERE id = @id RETURNING *`,
    { id, now: h.now, running: h.running, pending: h.pending, max_proc: h.maxProc, metrics: h.metrics ? JSON.stringify(h.metrics) : null, extensions: h.metrics ? 1 : 0 });
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
        this.flushSamples().catch((e) => console.error('[spiderplane-master] writing metric samples failed:', e));
      }, SAMPLE_FLUSH_MS);
      this.flushTimer.unref();
    }
    return row;
  }

  /** A failed heartbeat; the first one after a good heartbeat starts `failing_since`. */
  async recordFailure(id: number, error: string, now = Date.now()): Promise<void> {
    await this.db.run(`UPDATE nodes SET last_error = @error, failing_since = COALESCE(failing_since, @now) WHERE id = @id`, { error, id, now });
  }

  async setStatus(node: NodeRow, status: NodeStatus, reason: string, now: number): Promise<void> {
    await this.db.tx(async () => {
      await this.db.run(`UPDATE nodes SET status = ?, status_since = ? WHERE id = ?`, [status, now, node.id]);
      await this.event(node.id, node.name, now, status, reason);
    });
  }

  events(id: number, limit = 50): Promise<Array<{ node: string; time: number; status: string; reason: string | null }>> {
    return this.db.all(`SELECT node, time, status, reason FROM node_events WHERE node_id = ? ORDER BY time DESC, id DESC LIMIT ?`, [id, limit]);
  }

  async samples(id: number, since: number): Promise<unknown[]> {
    await this.flushSamples();
    return this.db.all(`SELECT time, cpu_percent, load1, mem_percent, ${sampleDiskMax(this.db)} AS disk_max,
                           rx_bps, tx_bps, running, pending FROM node_metrics WHERE node_id = ? AND time >= ? ORDER BY time`, [id, since]);
  }
}

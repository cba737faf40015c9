// Node metric history with downsampling, and the points the charts draw.
//
// Four tiers, each kept for a fixed time (sized so 1 000 nodes at a 5 s heartbeat fit in < 1 GB):
//   raw       node_metrics: one row per heartbeat, --metrics-retention-hours (6 h by default)
//   1 minute  metric_rollups res=60000: average and maximum per minute, MINUTE_RETENTION_MS (2 days)
//   1 hour    metric_rollups res=3600000: average and maximum per hour, HOUR_RETENTION_MS (35 days)
//   1 day     metric_rollups res=86400000: average and maximum per day, DAY_RETENTION_MS (400 days)
// Roll-ups are recomputed idempotently (INSERT OR REPLACE) from the tier below for every bucket
// since the last one written, so a restart or a late sample never leaves a hole or a double count.
// Expired rows go in small batches (maintain(): one short DELETE per turn of the event loop).
import type { Db } from '../../common/sqlite.ts';

export const MINUTE = 60_000;
export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;
export const MINUTE_RETENTION_MS = 2 * DAY;
export const HOUR_RETENTION_MS = 35 * DAY;
export const DAY_RETENTION_MS = 400 * DAY;
/** Rows per DELETE when expiring metrics. */
export const PRUNE_BATCH = 2000;

export const RANGES = { '1h': HOUR, '24h': 24 * HOUR, '7d': 7 * DAY, '30d': 30 * DAY, '1y': 365 * DAY } as const;
export type Range = keyof typeof RANGES;

/** One chart point: averages over the step, and maxima where a peak matters. */
export interface MetricPoint {
  t: number;
  cpu: number | null;
  cpu_max: number | null;
  mem: number | null;
  mem_max: number | null;
  disk: number | null;
  load: number | null;
  rx: number | null;
  rx_max: number | null;
  tx: number | null;
  tx_max: number | null;
  running: number | null;
}

export interface ClusterPoint {
  t: number;
  nodes: number;
  cpu: number | null;
  mem: number | null;
  disk_max: number | null;
  rx: number | null;
  tx: number | null;
  running: number | null;
  finished: number;
  failed: number;
  items: number;
}

/** Which tier answers a range, and the width of a point: at most ~1500 points per series. */
export function plan(range: Range): { res: 0 | typeof MINUTE | typeof HOUR | typeof DAY; step: number } {
  switch (range) {
    case '1h': return { res: 0, step: 0 };              // raw: every heartbeat (720 at 5 s)
    case '24h': return { res: MINUTE, step: MINUTE };    // 1440
    case '7d': return { res: HOUR, step: HOUR };         // 168
    case '30d': return { res: HOUR, step: HOUR };        // 720
    case '1y': return { res: DAY, step: DAY };           // 365
  }
}

const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

const r1 = (x: number | null) => (x === null ? null : Math.round(x * 10) / 10);

export class MetricHistory {
  private readonly s;
  private rolledTo = 0;
  private halted = false;
  private hoursTo = 0;
  private daysTo = 0;

  constructor(private readonly db: Db, private readonly rawRetentionMs: number) {
    // The fullest mount of a raw sample: its disk_max, or (rows written before it existed) from its JSON [{mount, used_percent}].
    const diskMax = `COALESCE(node_metrics.disk_max, (SELECT MAX(json_extract(d.value, '$.used_percent')) FROM json_each(node_metrics.disk) AS d))`;
    const rollFrom = (res: number, below: number) => `INSERT OR REPLACE INTO metric_rollups (res, node_id, bucket, n, cpu_avg, cpu_max, load_avg, mem_avg, mem_max, disk_max, rx_avg, rx_max, tx_avg, tx_max, running_avg, running_max)
        SELECT ${res}, node_id, (bucket / ${res}) * ${res} AS b, SUM(n), SUM(cpu_avg * n) / SUM(CASE WHEN cpu_avg IS NULL THEN 0 ELSE n END), MAX(cpu_max),
               SUM(load_avg * n) / SUM(CASE WHEN load_avg IS NULL THEN 0 ELSE n END), SUM(mem_avg * n) / SUM(CASE WHEN mem_avg IS NULL THEN 0 ELSE n END), MAX(mem_max),
               MAX(disk_max), SUM(rx_avg * n) / SUM(CASE WHEN rx_avg IS NULL THEN 0 ELSE n END), MAX(rx_max),
               SUM(tx_avg * n) / SUM(CASE WHEN tx_avg IS NULL THEN 0 ELSE n END), MAX(tx_max), SUM(running_avg * n) / SUM(n), MAX(running_max)
        FROM metric_rollups WHERE res = ${below} AND bucket >= ? AND bucket < ? GROUP BY node_id, b`;
    this.s = {
      lastBucket: db.prepare(`SELECT MAX(bucket) AS b FROM metric_rollups WHERE res = ?`),
      firstRaw: db.prepare(`SELECT MIN(time) AS t FROM node_metrics`),
      firstMinute: db.prepare(`SELECT MIN(bucket) AS t FROM metric_rollups WHERE res = ${MINUTE}`),
      firstHour: db.prepare(`SELECT MIN(bucket) AS t FROM metric_rollups WHERE res = ${HOUR}`),
      rollMinutes: db.prepare(`INSERT OR REPLACE INTO metric_rollups (res, node_id, bucket, n, cpu_avg, cpu_max, load_avg, mem_avg, mem_max, disk_max, rx_avg, rx_max, tx_avg, tx_max, running_avg, running_max)
        SELECT ${MINUTE}, node_id, (time / ${MINUTE}) * ${MINUTE} AS b, COUNT(*), AVG(cpu_percent), MAX(cpu_percent), AVG(load1), AVG(mem_percent), MAX(mem_percent),
               MAX(${diskMax}), AVG(rx_bps), MAX(rx_bps), AVG(tx_bps), MAX(tx_bps), AVG(running), MAX(running)
        FROM node_metrics WHERE time >= ? AND time < ? GROUP BY node_id, b`),
      rollHours: db.prepare(rollFrom(HOUR, MINUTE)),
      rollDays: db.prepare(rollFrom(DAY, HOUR)),
      pruneRaw: db.prepare(`DELETE FROM node_metrics WHERE rowid IN (SELECT rowid FROM node_metrics WHERE time < ? ORDER BY time LIMIT ${PRUNE_BATCH})`),
      pruneRes: db.prepare(`DELETE FROM metric_rollups WHERE res = @res AND (node_id, bucket) IN
        (SELECT node_id, bucket FROM metric_rollups WHERE res = @res AND bucket < @before ORDER BY bucket LIMIT ${PRUNE_BATCH})`),
      raw: db.prepare(`SELECT time AS t, cpu_percent AS cpu, mem_percent AS mem, ${diskMax} AS disk, load1 AS load, rx_bps AS rx, tx_bps AS tx, running
        FROM node_metrics WHERE node_id = ? AND time >= ? ORDER BY time`),
      rollups: db.prepare(`SELECT (bucket / CAST(@step AS INTEGER)) * CAST(@step AS INTEGER) AS t, AVG(cpu_avg) AS cpu, MAX(cpu_max) AS cpu_max, AVG(mem_avg) AS mem, MAX(mem_max) AS mem_max,
        MAX(disk_max) AS disk, AVG(load_avg) AS load, AVG(rx_avg) AS rx, MAX(rx_max) AS rx_max, AVG(tx_avg) AS tx, MAX(tx_max) AS tx_max, AVG(running_avg) AS running
        FROM metric_rollups WHERE res = @res AND node_id = @node AND bucket >= @since GROUP BY t ORDER BY t`),
      // Per bucket: the average node (CPU, memory), the fullest disk, and cluster totals (network, running).
      // A node's rates and running count are averaged over the step first, then summed across nodes.
      cluster: db.prepare(`SELECT t, COUNT(*) AS nodes, AVG(cpu) AS cpu, AVG(mem) AS mem, MAX(disk) AS disk_max, SUM(rx) AS rx, SUM(tx) AS tx, SUM(running) AS running FROM (
          SELECT (bucket / CAST(@step AS INTEGER)) * CAST(@step AS INTEGER) AS t, node_id, AVG(cpu_avg) AS cpu, AVG(mem_avg) AS mem, MAX(disk_max) AS disk, AVG(rx_avg) AS rx, AVG(tx_avg) AS tx, AVG(running_avg) AS running
          FROM metric_rollups WHERE res = @res AND bucket >= @since GROUP BY t, node_id
        ) GROUP BY t ORDER BY t`),
      jobs: db.prepare(`SELECT (ended_at / CAST(@step AS INTEGER)) * CAST(@step AS INTEGER) AS t, COUNT(*) AS finished,
          SUM(CASE WHEN outcome IN ('failed', 'lost') THEN 1 ELSE 0 END) AS failed, COALESCE(SUM(items_count), 0) AS items
        FROM runs WHERE ended_at >= @since AND state IN ('finished', 'lost') GROUP BY t`),
    };
  }

  private last(res: number): number | null { return (this.s.lastBucket.get(res) as { b: number | null }).b; }

  /**
   * Rolls every complete minute and hour not rolled yet (the last written bucket is redone, so a
   * sample that arrived late is counted). Cheap when called often: it only reads the new rows.
   */
  rollup(now = Date.now()): void {
    const minuteEnd = Math.floor(now / MINUTE) * MINUTE;
    if (minuteEnd === this.rolledTo) return; // nothing completed since the last call
    this.rolledTo = minuteEnd;
    this.db.transaction(() => {
      const minuteFrom = this.last(MINUTE) ?? (this.s.firstRaw.get() as { t: number | null }).t;
      if (minuteFrom !== null && minuteFrom < minuteEnd) this.s.rollMinutes.run(Math.floor(minuteFrom / MINUTE) * MINUTE, minuteEnd);
      // An hour (a day) is rolled when it completes and once more a minute later, when its last
      // minute has been redone with any sample that came in late — not every minute.
      const hourEnd = Math.floor(now / HOUR) * HOUR;
      if (hourEnd !== this.hoursTo || minuteEnd - hourEnd <= MINUTE) {
        this.hoursTo = hourEnd;
        const hourFrom = this.last(HOUR) ?? (this.s.firstMinute.get() as { t: number | null }).t;
        if (hourFrom !== null && hourFrom < hourEnd) this.s.rollHours.run(Math.floor(hourFrom / HOUR) * HOUR, hourEnd);
      }
      const dayEnd = Math.floor(now / DAY) * DAY;
      if (dayEnd !== this.daysTo || minuteEnd - dayEnd <= MINUTE) {
        this.daysTo = dayEnd;
        const dayFrom = this.last(DAY) ?? (this.s.firstHour.get() as { t: number | null }).t;
        if (dayFrom !== null && dayFrom < dayEnd) this.s.rollDays.run(Math.floor(dayFrom / DAY) * DAY, dayEnd);
      }
    })();
  }

  /** The expiry deletes, each one batch of at most PRUNE_BATCH rows; true when it deleted a full batch. */
  private pruneSteps(now: number): Array<() => boolean> {
    return [
      () => this.s.pruneRaw.run(now - this.rawRetentionMs).changes === PRUNE_BATCH,
      () => this.s.pruneRes.run({ res: MINUTE, before: now - MINUTE_RETENTION_MS }).changes === PRUNE_BATCH,
      () => this.s.pruneRes.run({ res: HOUR, before: now - HOUR_RETENTION_MS }).changes === PRUNE_BATCH,
      () => this.s.pruneRes.run({ res: DAY, before: now - DAY_RETENTION_MS }).changes === PRUNE_BATCH,
    ];
  }

  /** Drops what each tier no longer keeps (after rolling it up), all at once: for tests and tools. */
  prune(now = Date.now()): void {
    this.rollup(now);
    for (const step of this.pruneSteps(now)) while (step());
  }

  /** The master's timer: roll up, then expire in small batches with a turn of the event loop between. */
  async maintain(now = Date.now()): Promise<void> {
    this.halted = false;
    this.rollup(now);
    for (const step of this.pruneSteps(now)) {
      while (!this.halted && step()) await yieldToLoop();
      await yieldToLoop();
    }
  }

  /** Ends a maintain() in progress after its current batch (the rest waits for the next one). */
  halt(): void { this.halted = true; }

  nodeSeries(nodeId: number, range: Range, now = Date.now()): { step_seconds: number; points: MetricPoint[] } {
    const since = now - RANGES[range];
    const { res, step } = plan(range);
    if (res === 0) {
      type Raw = { t: number; cpu: number | null; mem: number | null; disk: number | null; load: number | null; rx: number | null; tx: number | null; running: number };
      const points = (this.s.raw.all(nodeId, since) as Raw[]).map((p) => ({
        t: p.t, cpu: p.cpu, cpu_max: p.cpu, mem: p.mem, mem_max: p.mem, disk: p.disk, load: p.load, rx: p.rx, rx_max: p.rx, tx: p.tx, tx_max: p.tx, running: p.running,
      }));
      return { step_seconds: 0, points };
    }
    this.rollup(now);
    const points = (this.s.rollups.all({ res, step, node: nodeId, since: Math.floor(since / step) * step }) as MetricPoint[]).map((p) => ({
      ...p, cpu: r1(p.cpu), mem: r1(p.mem), load: p.load === null ? null : Math.round(p.load * 100) / 100, rx: r1(p.rx), tx: r1(p.tx),
      running: p.running === null ? null : Math.round(p.running * 100) / 100,
    }));
    return { step_seconds: step / 1000, points };
  }

  /** Cluster figures per step: the average node's CPU and memory, the fullest disk, network and running summed. */
  clusterSeries(range: Range, now = Date.now()): { step_seconds: number; points: ClusterPoint[] } {
    const since = now - RANGES[range];
    // Across all nodes: 1h and 24h from 1-minute buckets, 7d and 30d from 1-hour buckets, 1y from days.
    const res = range === '1h' || range === '24h' ? MINUTE : range === '1y' ? DAY : HOUR;
    const step = res;
    this.rollup(now);
    const from = Math.floor(since / step) * step;
    const jobs = new Map<number, { finished: number; failed: number; items: number }>();
    for (const j of this.s.jobs.all({ step, since: from }) as Array<{ t: number; finished: number; failed: number; items: number }>) jobs.set(j.t, j);
    type Row = Omit<ClusterPoint, 'finished' | 'failed' | 'items'>;
    const rows = this.s.cluster.all({ res, step, since: from }) as Row[];
    const seen = new Set<number>();
    const points: ClusterPoint[] = rows.map((r) => {
      seen.add(r.t);
      const j = jobs.get(r.t);
      return { ...r, cpu: r1(r.cpu), mem: r1(r.mem), rx: r1(r.rx), tx: r1(r.tx), running: r1(r.running), finished: j?.finished ?? 0, failed: j?.failed ?? 0, items: j?.items ?? 0 };
    });
    for (const [t, j] of jobs) {
      if (!seen.has(t)) points.push({ t, nodes: 0, cpu: null, mem: null, disk_max: null, rx: null, tx: null, running: null, ...j });
    }
    points.sort((a, b) => a.t - b.t);
    return { step_seconds: step / 1000, points };
  }
}

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
import type Database from 'better-sqlite3';
import type { Db } from '../../common/sqlite.ts';

export const MINUTE = 60_000;
export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;
export const MINUTE_RETENTION_MS = 2 * DAY;
export const HOUR_RETENTION_MS = 35 * DAY;
export const DAY_RETENTION_MS = 400 * DAY;
/** Nodes per roll-up statement (one short statement per chunk). */
export const ROLLUP_CHUNK = 100;
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
  private firstPass = true;
  private halted = false;
  private hoursTo = 0;
  private daysTo = 0;

  constructor(private readonly db: Db, private readonly rawRetentionMs: number) {
    // The fullest mount of a raw sample: its disk_max, or (rows written before it existed) from its JSON [{mount, used_percent}].
    const diskMax = `COALESCE(node_metrics.disk_max, (SELECT MAX(json_extract(d.value, '$.used_percent')) FROM json_each(node_metrics.disk) AS d))`;
    const rollFrom = (res: number, below: number, only: string) => `INSERT OR REPLACE INTO metric_rollups (res, node_id, bucket, n, cpu_avg, cpu_max, load_avg, mem_avg, mem_max, disk_max, rx_avg, rx_max, tx_avg, tx_max, running_avg, running_max)
        SELECT ${res}, node_id, (bucket / ${res}) * ${res} AS b, SUM(n), SUM(cpu_avg * n) / SUM(CASE WHEN cpu_avg IS NULL THEN 0 ELSE n END), MAX(cpu_max),
               SUM(load_avg * n) / SUM(CASE WHEN load_avg IS NULL THEN 0 ELSE n END), SUM(mem_avg * n) / SUM(CASE WHEN mem_avg IS NULL THEN 0 ELSE n END), MAX(mem_max),
               MAX(disk_max), SUM(rx_avg * n) / SUM(CASE WHEN rx_avg IS NULL THEN 0 ELSE n END), MAX(rx_max),
               SUM(tx_avg * n) / SUM(CASE WHEN tx_avg IS NULL THEN 0 ELSE n END), MAX(tx_max), SUM(running_avg * n) / SUM(n), MAX(running_max)
        FROM metric_rollups WHERE res = ${below} AND bucket >= @from AND bucket < @to ${only} GROUP BY node_id, b`;
    const rawRoll = (only: string) => db.prepare(`INSERT OR REPLACE INTO metric_rollups (res, node_id, bucket, n, cpu_avg, cpu_max, load_avg, mem_avg, mem_max, disk_max, rx_avg, rx_max, tx_avg, tx_max, running_avg, running_max)
        SELECT ${MINUTE}, node_id, (time / ${MINUTE}) * ${MINUTE} AS b, COUNT(*), AVG(cpu_percent), MAX(cpu_percent), AVG(load1), AVG(mem_percent), MAX(mem_percent),
               MAX(${diskMax}), AVG(rx_bps), MAX(rx_bps), AVG(tx_bps), MAX(tx_bps), AVG(running), MAX(running)
        FROM node_metrics WHERE time >= @from AND time < @to ${only} GROUP BY node_id, b`);
    this.s = {
      lastBucket: db.prepare(`SELECT MAX(bucket) AS b FROM metric_rollups WHERE res = ?`),
      firstRaw: db.prepare(`SELECT MIN(time) AS t FROM node_metrics`),
      firstMinute: db.prepare(`SELECT MIN(bucket) AS t FROM metric_rollups WHERE res = ${MINUTE}`),
      firstHour: db.prepare(`SELECT MIN(bucket) AS t FROM metric_rollups WHERE res = ${HOUR}`),
      // Per-node roll-ups, for all nodes or a chunk of them (a JSON array of ids: one index seek per node).
      rollMinutes: rawRoll(''),
      rollMinutesOf: rawRoll(`AND node_id IN (SELECT value FROM json_each(@ids))`),
      rollHours: db.prepare(rollFrom(HOUR, MINUTE, '')),
      rollHoursOf: db.prepare(rollFrom(HOUR, MINUTE, `AND node_id IN (SELECT value FROM json_each(@ids))`)),
      rollDays: db.prepare(rollFrom(DAY, HOUR, '')),
      rollDaysOf: db.prepare(rollFrom(DAY, HOUR, `AND node_id IN (SELECT value FROM json_each(@ids))`)),
      // The cluster row of a bucket (cluster_rollups): the average node's CPU, memory and load, the
      // fullest disk, network and running summed over nodes, and how many nodes reported. Charts of
      // the whole cluster read these few rows, never a row per node.
      rollCluster: db.prepare(`INSERT OR REPLACE INTO cluster_rollups (res, bucket, nodes, cpu, mem, load, disk_max, rx, tx, running)
        SELECT @res, bucket, COUNT(*), AVG(cpu_avg), AVG(mem_avg), AVG(load_avg), MAX(disk_max), SUM(rx_avg), SUM(tx_avg), SUM(running_avg)
        FROM metric_rollups WHERE res = @res AND bucket >= @from AND bucket < @to GROUP BY bucket`),
      lastCluster: db.prepare(`SELECT MAX(bucket) AS b FROM cluster_rollups WHERE res = ?`),
      pruneCluster: db.prepare(`DELETE FROM cluster_rollups WHERE res = @res AND bucket < @before`),
      firstOf: db.prepare(`SELECT MIN(bucket) AS b FROM metric_rollups WHERE res = ?`),
      nodeIds: db.prepare(`SELECT id FROM nodes ORDER BY id`),
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
      cluster: db.prepare(`SELECT bucket AS t, nodes, cpu, mem, disk_max, rx, tx, running FROM cluster_rollups WHERE res = @res AND bucket >= @since ORDER BY bucket`),
      jobs: db.prepare(`SELECT (ended_at / CAST(@step AS INTEGER)) * CAST(@step AS INTEGER) AS t, COUNT(*) AS finished,
          SUM(CASE WHEN outcome IN ('failed', 'lost') THEN 1 ELSE 0 END) AS failed, COALESCE(SUM(items_count), 0) AS items
        FROM runs WHERE ended_at >= @since AND state IN ('finished', 'lost') GROUP BY t`),
    };
  }

  private last(res: number): number | null { return (this.s.lastBucket.get(res) as { b: number | null }).b; }

  /**
   * The roll-up work due at `now`, as small steps: each rolls one chunk of nodes (or, for the
   * cluster rows, one window of buckets) and is short. A step may append more steps: run them in
   * order until the array ends. Every complete minute, hour and day not
   * rolled yet is rolled; the last written bucket is redone, so a late sample is counted.
   */
  private rollupSteps(now: number, chunked: boolean): Array<() => void> {
    const minuteEnd = Math.floor(now / MINUTE) * MINUTE;
    if (minuteEnd === this.rolledTo) return []; // nothing completed since the last call
    this.rolledTo = minuteEnd;
    // After a start, redo one more bucket of each tier: a crash between chunks left it half rolled.
    const again = this.firstPass ? 1 : 0;
    this.firstPass = false;
    const ids = chunked ? (this.s.nodeIds.all() as Array<{ id: number }>).map((r) => r.id) : [];
    const chunks: Array<string | null> = [];
    if (!chunked) chunks.push(null);
    for (let i = 0; i < ids.length; i += ROLLUP_CHUNK) chunks.push(JSON.stringify(ids.slice(i, i + ROLLUP_CHUNK)));
    const steps: Array<() => void> = [];
    const perNode = (all: Database.Statement, of: Database.Statement, from: number, to: number) => {
      for (const c of chunks) steps.push(() => { (c === null ? all : of).run(c === null ? { from, to } : { from, to, ids: c }); });
    };
    // Cluster rows of [from, to), `window` buckets per step, after the per-node rows they read.
    const cluster = (res: number, to: number, window: number) => {
      steps.push(() => {
        const last = (this.s.lastCluster.get(res) as { b: number | null }).b;
        const first = last ?? (this.s.firstOf.get(res) as { b: number | null }).b;
        if (first === null) return;
        for (let from = Math.max(first - again * res, 0); from < to; from += window * res) {
          const end = Math.min(from + window * res, to);
          // Appended as further steps (after every per-node step), each window its own short statement.
          steps.push(() => { this.s.rollCluster.run({ res, from, to: end }); });
        }
      });
    };
    const from = (res: number, firstBelow: () => number | null) => {
      const last = this.last(res);
      const f = last === null ? firstBelow() : last - again * res;
      return f === null ? null : Math.floor(f / res) * res;
    };
    // Each tier is planned when its step runs, after the tier below it has been rolled.
    const tier = (res: number, end: number, all: Database.Statement, of: Database.Statement, first: () => number | null, window: number, next: (() => void) | null) => () => {
      const f = from(res, first);
      if (f !== null && f < end) {
        perNode(all, of, f, end);
        cluster(res, end, window);
      }
      if (next) steps.push(next);
    };
    // An hour (a day) is rolled when it completes and once more a minute later, when its last
    // minute has been redone with any sample that came in late — not every minute.
    const hourEnd = Math.floor(now / HOUR) * HOUR;
    const hoursDue = hourEnd !== this.hoursTo || minuteEnd - hourEnd <= MINUTE;
    this.hoursTo = hourEnd;
    const dayEnd = Math.floor(now / DAY) * DAY;
    const daysDue = dayEnd !== this.daysTo || minuteEnd - dayEnd <= MINUTE;
    this.daysTo = dayEnd;
    const days = daysDue ? tier(DAY, dayEnd, this.s.rollDays, this.s.rollDaysOf, () => (this.s.firstHour.get() as { t: number | null }).t, 30, null) : null;
    const hours = hoursDue ? tier(HOUR, hourEnd, this.s.rollHours, this.s.rollHoursOf, () => (this.s.firstMinute.get() as { t: number | null }).t, 24, days) : days;
    steps.push(tier(MINUTE, minuteEnd, this.s.rollMinutes, this.s.rollMinutesOf, () => (this.s.firstRaw.get() as { t: number | null }).t, 30, hours));
    return steps;
  }

  /** Rolls up everything due at once, in one transaction (tests and tools; the master uses maintain()). */
  rollup(now = Date.now()): void {
    this.db.transaction(() => {
      const steps = this.rollupSteps(now, false);
      for (let i = 0; i < steps.length; i++) steps[i]!();
    })();
  }

  /** The expiry deletes, each one batch of at most PRUNE_BATCH rows; true when it deleted a full batch. */
  private pruneSteps(now: number): Array<() => boolean> {
    return [
      () => this.s.pruneRaw.run(now - this.rawRetentionMs).changes === PRUNE_BATCH,
      () => this.s.pruneRes.run({ res: MINUTE, before: now - MINUTE_RETENTION_MS }).changes === PRUNE_BATCH,
      () => this.s.pruneRes.run({ res: HOUR, before: now - HOUR_RETENTION_MS }).changes === PRUNE_BATCH,
      () => this.s.pruneRes.run({ res: DAY, before: now - DAY_RETENTION_MS }).changes === PRUNE_BATCH,
      // A row per bucket for the cluster: few, one statement each.
      () => { for (const [res, keep] of [[MINUTE, MINUTE_RETENTION_MS], [HOUR, HOUR_RETENTION_MS], [DAY, DAY_RETENTION_MS]] as const) this.s.pruneCluster.run({ res, before: now - keep }); return false; },
    ];
  }

  /** Drops what each tier no longer keeps (after rolling it up), all at once: for tests and tools. */
  prune(now = Date.now()): void {
    this.rollup(now);
    for (const step of this.pruneSteps(now)) while (step());
  }

  /** The master's timer: roll up, then expire in small batches with a turn of the event loop between. */
  async maintain(now = Date.now(), observe?: (step: string, cpuMs: number) => void): Promise<void> {
    this.halted = false;
    // `observe` (benchmarks) gets the CPU time of each synchronous step: the event loop's longest hold.
    const run = <T,>(what: string, fn: () => T): T => {
      if (!observe) return fn();
      const c0 = process.cpuUsage();
      const r = fn();
      const c = process.cpuUsage(c0);
      observe(what, (c.user + c.system) / 1000);
      return r;
    };
    const steps = this.rollupSteps(now, true);
    for (let i = 0; i < steps.length; i++) {
      run('rollup', steps[i]!);
      await yieldToLoop();
    }
    for (const [k, step] of this.pruneSteps(now).entries()) {
      while (!this.halted && run(`expire ${['raw', 'minute', 'hour', 'day', 'cluster'][k]}`, step)) await yieldToLoop();
      await yieldToLoop();
    }
  }


  /**
   * Before a chart read: a small fleet (one chunk of nodes) is rolled up on the spot, so a chart
   * is current to the minute; a large one is left to the timer's chunked maintain(), so a read
   * never does a fleet's roll-up in one go.
   */
  private freshen(now: number): void {
    if ((this.s.nodeIds.all() as unknown[]).length <= ROLLUP_CHUNK) this.rollup(now);
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
    this.freshen(now);
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
    this.freshen(now);
    const from = Math.floor(since / step) * step;
    const jobs = new Map<number, { finished: number; failed: number; items: number }>();
    // Job counts read the runs that ended in the range: up to 30 days of them, never a year of history on a request.
    if (range !== '1y') for (const j of this.s.jobs.all({ step, since: from }) as Array<{ t: number; finished: number; failed: number; items: number }>) jobs.set(j.t, j);
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

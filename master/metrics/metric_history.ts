// Node metric history with downsampling, and the points the charts draw.
//
// Four tiers, each kept for a fixed time (sized so 1 000 nodes at a 5 s heartbeat fit in < 1 GB):
//   raw       node_metrics: one row per heartbeat, --metrics-retention-hours (6 h by default)
//   1 minute  metric_rollups res=60000: average and maximum per minute, MINUTE_RETENTION_MS (2 days)
//   1 hour    metric_rollups res=3600000: average and maximum per hour, HOUR_RETENTION_MS (35 days)
//   1 day     metric_rollups res=86400000: average and maximum per day, DAY_RETENTION_MS (400 days)
// Roll-ups are recomputed idempotently (an upsert) from the tier below for every bucket
// since the last one written, so a restart or a late sample never leaves a hole or a double count.
// Expired rows go in small batches (maintain(): one short DELETE per turn of the event loop).
import type { SqlDb } from '../store/sql_db.ts';
import { sampleDiskMax } from '../nodes/node_registry.ts';

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

const ROLLUP_COLUMNS = 'n, cpu_avg, cpu_max, load_avg, mem_avg, mem_max, disk_max, rx_avg, rx_max, tx_avg, tx_max, running_avg, running_max';
const UPSERT_ROLLUP = `ON CONFLICT (res, node_id, bucket) DO UPDATE SET ${ROLLUP_COLUMNS.split(', ').map((c) => `${c} = excluded.${c}`).join(', ')}`;

/** A statement with `?` placeholders and how to fill them for a window of buckets (and a chunk of node ids). */
type Roll = { sql: string; args: (from: number, to: number, ids: string | null) => Array<number | string> };

export class MetricHistory {
  private readonly q;
  private rolledTo = 0;
  private firstPass = true;
  private halted = false;
  private hoursTo = 0;
  private daysTo = 0;

  constructor(private readonly db: SqlDb, private readonly rawRetentionMs: number) {
    const diskMax = sampleDiskMax(db);
    // Per-node roll-ups, for all nodes or a chunk of them (a JSON array of ids: one index seek per node).
    const only = (ids: boolean) => (ids ? `AND ${db.sql.inJsonArray('node_id', 'int')}` : '');
    const args = (from: number, to: number, ids: string | null) => (ids === null ? [from, to] : [from, to, ids]);
    // A weighted average of the tier below; NULLIF: no sample carried the figure (SQLite gives NULL for x/0, PostgreSQL an error).
    const avg = (c: string) => `SUM(${c} * n) / NULLIF(SUM(CASE WHEN ${c} IS NULL THEN 0 ELSE n END), 0)`;
    const rollFrom = (res: number, below: number, ids: boolean): Roll => ({
      sql: `INSERT INTO metric_rollups (res, node_id, bucket, ${ROLLUP_COLUMNS})
        SELECT ${res}, node_id, (bucket / ${res}) * ${res} AS b, SUM(n), ${avg('cpu_avg')}, MAX(cpu_max),
               ${avg('load_avg')}, ${avg('mem_avg')}, MAX(mem_max),
               MAX(disk_max), ${avg('rx_avg')}, MAX(rx_max),
               ${avg('tx_avg')}, MAX(tx_max), SUM(running_avg * n) / SUM(n), MAX(running_max)
        FROM metric_rollups WHERE res = ${below} AND bucket >= ? AND bucket < ? ${only(ids)} GROUP BY node_id, (bucket / ${res}) * ${res} ${UPSERT_ROLLUP}`,
      args,
    });
    const rawRoll = (ids: boolean): Roll => ({
      sql: `INSERT INTO metric_rollups (res, node_id, bucket, ${ROLLUP_COLUMNS})
        SELECT ${MINUTE}, node_id, (time / ${MINUTE}) * ${MINUTE} AS b, COUNT(*), AVG(cpu_percent), MAX(cpu_percent), AVG(load1), AVG(mem_percent), MAX(mem_percent),
               MAX(${diskMax}), AVG(rx_bps), MAX(rx_bps), AVG(tx_bps), MAX(tx_bps), AVG(running), MAX(running)
        FROM node_metrics WHERE time >= ? AND time < ? ${only(ids)} GROUP BY node_id, (time / ${MINUTE}) * ${MINUTE} ${UPSERT_ROLLUP}`,
      args,
    });
    this.q = {
      lastBucket: `SELECT MAX(bucket) AS v FROM metric_rollups WHERE res = ?`,
      firstRaw: `SELECT MIN(time) AS v FROM node_metrics`,
      firstMinute: `SELECT MIN(bucket) AS v FROM metric_rollups WHERE res = ${MINUTE}`,
      firstHour: `SELECT MIN(bucket) AS v FROM metric_rollups WHERE res = ${HOUR}`,
      rollMinutes: rawRoll(false),
      rollMinutesOf: rawRoll(true),
      rollHours: rollFrom(HOUR, MINUTE, false),
      rollHoursOf: rollFrom(HOUR, MINUTE, true),
      rollDays: rollFrom(DAY, HOUR, false),
      rollDaysOf: rollFrom(DAY, HOUR, true),
      // The cluster row of a bucket (cluster_rollups): the average node's CPU, memory and load, the
      // fullest disk, network and running summed over nodes, and how many nodes reported. Charts of
      // the whole cluster read these few rows, never a row per node.
      rollCluster: `INSERT INTO cluster_rollups (res, bucket, nodes, cpu, mem, load, disk_max, rx, tx, running)
        SELECT CAST(@res AS BIGINT), bucket, COUNT(*), AVG(cpu_avg), AVG(mem_avg), AVG(load_avg), MAX(disk_max), SUM(rx_avg), SUM(tx_avg), SUM(running_avg)
        FROM metric_rollups WHERE res = @res AND bucket >= @from AND bucket < @to GROUP BY bucket
        ON CONFLICT (res, bucket) DO UPDATE SET nodes = excluded.nodes, cpu = excluded.cpu, mem = excluded.mem, load = excluded.load,
          disk_max = excluded.disk_max, rx = excluded.rx, tx = excluded.tx, running = excluded.running`,
      lastCluster: `SELECT MAX(bucket) AS v FROM cluster_rollups WHERE res = ?`,
      pruneCluster: `DELETE FROM cluster_rollups WHERE res = @res AND bucket < @before`,
      firstOf: `SELECT MIN(bucket) AS v FROM metric_rollups WHERE res = ?`,
      nextOf: `SELECT MIN(bucket) AS v FROM metric_rollups WHERE res = ? AND bucket >= ?`,
      nodeIds: `SELECT id FROM nodes ORDER BY id`,
      nodeCount: `SELECT COUNT(*) AS n FROM nodes`,
      // The time before which one batch of raw rows lies (the batch's end), by the time index.
      rawBatchEnd: `SELECT time FROM node_metrics WHERE time < ? ORDER BY time LIMIT 1 OFFSET ${PRUNE_BATCH}`,
      pruneRaw: `DELETE FROM node_metrics WHERE time < ?`,
      pruneRes: `DELETE FROM metric_rollups WHERE res = @res AND (node_id, bucket) IN
        (SELECT node_id, bucket FROM metric_rollups WHERE res = @res AND bucket < @before ORDER BY bucket LIMIT ${PRUNE_BATCH})`,
      raw: `SELECT time AS t, cpu_percent AS cpu, mem_percent AS mem, ${diskMax} AS disk, load1 AS load, rx_bps AS rx, tx_bps AS tx, running
        FROM node_metrics WHERE node_id = ? AND time >= ? ORDER BY time`,
      rollups: `SELECT (bucket / CAST(@step AS BIGINT)) * CAST(@step AS BIGINT) AS t, AVG(cpu_avg) AS cpu, MAX(cpu_max) AS cpu_max, AVG(mem_avg) AS mem, MAX(mem_max) AS mem_max,
        MAX(disk_max) AS disk, AVG(load_avg) AS load, AVG(rx_avg) AS rx, MAX(rx_max) AS rx_max, AVG(tx_avg) AS tx, MAX(tx_max) AS tx_max, AVG(running_avg) AS running
        FROM metric_rollups WHERE res = @res AND node_id = @node AND bucket >= @since GROUP BY (bucket / CAST(@step AS BIGINT)) * CAST(@step AS BIGINT) ORDER BY t`,
      // Per bucket: the average node (CPU, memory), the fullest disk, and cluster totals (network, running).
      // A node's rates and running count are averaged over the step first, then summed across nodes.
      cluster: `SELECT bucket AS t, nodes, cpu, mem, disk_max, rx, tx, running FROM cluster_rollups WHERE res = @res AND bucket >= @since ORDER BY bucket`,
      jobs: `SELECT (ended_at / CAST(@step AS BIGINT)) * CAST(@step AS BIGINT) AS t, COUNT(*) AS finished,
          SUM(CASE WHEN outcome IN ('failed', 'lost') THEN 1 ELSE 0 END) AS failed, COALESCE(SUM(items_count), 0) AS items
        FROM runs WHERE ended_at >= @since AND state IN ('finished', 'lost') GROUP BY (ended_at / CAST(@step AS BIGINT)) * CAST(@step AS BIGINT)`,
    };
  }

  /** The one value `v` of a MIN/MAX query (null over no rows). */
  private async min(sql: string, params: Array<number> = []): Promise<number | null> {
    const r = await this.db.get<{ v: number | null }>(sql, params);
    return r?.v ?? null;
  }

  private last(res: number): Promise<number | null> { return this.min(this.q.lastBucket, [res]); }

  /**
   * The roll-up work due at `now`, as small steps: each rolls one chunk of nodes (or, for the
   * cluster rows, one window of buckets) and is short. A step may append more steps: run them in
   * order until the array ends. Every complete minute, hour and day not
   * rolled yet is rolled; the last written bucket is redone, so a late sample is counted.
   */
  private async rollupSteps(now: number, chunked: boolean): Promise<Array<() => Promise<void>>> {
    const minuteEnd = Math.floor(now / MINUTE) * MINUTE;
    if (minuteEnd === this.rolledTo) return []; // nothing completed since the last call
    this.rolledTo = minuteEnd;
    // After a start, redo one more bucket of each tier: a crash between chunks left it half rolled.
    const again = this.firstPass ? 1 : 0;
    this.firstPass = false;
    // An hour (a day) is rolled when it completes and once more a minute later, when its last
    // minute has been redone with any sample that came in late — not every minute.
    const hourEnd = Math.floor(now / HOUR) * HOUR;
    const hoursDue = hourEnd !== this.hoursTo || minuteEnd - hourEnd <= MINUTE;
    this.hoursTo = hourEnd;
    const dayEnd = Math.floor(now / DAY) * DAY;
    const daysDue = dayEnd !== this.daysTo || minuteEnd - dayEnd <= MINUTE;
    this.daysTo = dayEnd;
    const ids = chunked ? (await this.db.all<{ id: number }>(this.q.nodeIds)).map((r) => r.id) : [];
    const chunks: Array<string | null> = [];
    if (!chunked) chunks.push(null);
    for (let i = 0; i < ids.length; i += ROLLUP_CHUNK) chunks.push(JSON.stringify(ids.slice(i, i + ROLLUP_CHUNK)));
    const steps: Array<() => Promise<void>> = [];
    const perNode = (all: Roll, of: Roll, from: number, to: number) => {
      for (const c of chunks) {
        const roll = c === null ? all : of;
        steps.push(async () => { await this.db.run(roll.sql, roll.args(from, to, c)); });
      }
    };
    // Cluster rows of [from, to), `window` buckets per step, after the per-node rows they read. Each
    // window starts at the next bucket that has rows: a gap (a master down for a month, a stray old
    // sample) costs one look-up, not a statement per empty window.
    const cluster = (res: number, to: number, window: number) => {
      const windowFrom = (at: number) => async () => {
        const start = await this.min(this.q.nextOf, [res, at]);
        if (start === null || start >= to) return;
        const end = Math.min(start + window * res, to);
        await this.db.run(this.q.rollCluster, { res, from: start, to: end });
        // Appended as a further step (after every per-node step), each window its own short statement.
        steps.push(windowFrom(end));
      };
      steps.push(async () => {
        const first = (await this.min(this.q.lastCluster, [res])) ?? (await this.min(this.q.firstOf, [res]));
        if (first !== null) steps.push(windowFrom(Math.max(first - again * res, 0)));
      });
    };
    const from = async (res: number, firstBelow: () => Promise<number | null>) => {
      const last = await this.last(res);
      const f = last === null ? await firstBelow() : last - again * res;
      return f === null ? null : Math.floor(f / res) * res;
    };
    // Each tier is planned when its step runs, after the tier below it has been rolled.
    const tier = (res: number, end: number, all: Roll, of: Roll, first: () => Promise<number | null>, window: number, next: (() => Promise<void>) | null) => async () => {
      const f = await from(res, first);
      if (f !== null && f < end) {
        perNode(all, of, f, end);
        cluster(res, end, window);
      }
      if (next) steps.push(next);
    };
    const days = daysDue ? tier(DAY, dayEnd, this.q.rollDays, this.q.rollDaysOf, () => this.min(this.q.firstHour), 30, null) : null;
    const hours = hoursDue ? tier(HOUR, hourEnd, this.q.rollHours, this.q.rollHoursOf, () => this.min(this.q.firstMinute), 24, days) : days;
    steps.push(tier(MINUTE, minuteEnd, this.q.rollMinutes, this.q.rollMinutesOf, () => this.min(this.q.firstRaw), 30, hours));
    return steps;
  }

  /** Rolls up everything due at once, in one transaction (tests and tools; the master uses maintain()). */
  async rollup(now = Date.now()): Promise<void> {
    await this.db.tx(async () => {
      const steps = await this.rollupSteps(now, false);
      for (let i = 0; i < steps.length; i++) await steps[i]!();
    });
  }

  /** Deletes one batch of raw rows older than `before`; true when there may be more. */
  private async pruneRawBatch(before: number): Promise<boolean> {
    const end = await this.db.get<{ time: number }>(this.q.rawBatchEnd, [before]);
    // Rows of the batch's last millisecond stay for the next batch: a batch is never cut mid-time
    // (unless the whole batch is one millisecond's: then that millisecond goes whole).
    if (!end) {
      await this.db.run(this.q.pruneRaw, [before]);
      return false;
    }
    if ((await this.db.run(this.q.pruneRaw, [end.time])) === 0) await this.db.run(this.q.pruneRaw, [end.time + 1]);
    return true;
  }

  /** The expiry deletes, each one batch of at most PRUNE_BATCH rows; true when there may be more. */
  private pruneSteps(now: number): Array<() => Promise<boolean>> {
    const res = (r: number, keep: number) => async () => (await this.db.run(this.q.pruneRes, { res: r, before: now - keep })) === PRUNE_BATCH;
    return [
      () => this.pruneRawBatch(now - this.rawRetentionMs),
      res(MINUTE, MINUTE_RETENTION_MS),
      res(HOUR, HOUR_RETENTION_MS),
      res(DAY, DAY_RETENTION_MS),
      // A row per bucket for the cluster: few, one statement each.
      async () => {
        for (const [r, keep] of [[MINUTE, MINUTE_RETENTION_MS], [HOUR, HOUR_RETENTION_MS], [DAY, DAY_RETENTION_MS]] as const) await this.db.run(this.q.pruneCluster, { res: r, before: now - keep });
        return false;
      },
    ];
  }

  /** Drops what each tier no longer keeps (after rolling it up), all at once: for tests and tools. */
  async prune(now = Date.now()): Promise<void> {
    await this.rollup(now);
    for (const step of this.pruneSteps(now)) while (await step());
  }

  /** The master's timer: roll up, then expire in small batches with a turn of the event loop between. */
  async maintain(now = Date.now(), observe?: (step: string, cpuMs: number) => void): Promise<void> {
    this.halted = false;
    // `observe` (benchmarks) gets the CPU time of each step: on SQLite, the event loop's longest hold.
    const run = async <T,>(what: string, fn: () => Promise<T>): Promise<T> => {
      if (!observe) return fn();
      const c0 = process.cpuUsage();
      const r = await fn();
      const c = process.cpuUsage(c0);
      observe(what, (c.user + c.system) / 1000);
      return r;
    };
    const steps = await this.rollupSteps(now, true);
    for (let i = 0; i < steps.length; i++) {
      await run('rollup', steps[i]!);
      await yieldToLoop();
    }
    for (const [k, step] of this.pruneSteps(now).entries()) {
      while (!this.halted && (await run(`expire ${['raw', 'minute', 'hour', 'day', 'cluster'][k]}`, step))) await yieldToLoop();
      await yieldToLoop();
    }
  }


  /**
   * Before a chart read: a small fleet (one chunk of nodes) is rolled up on the spot, so a chart
   * is current to the minute; a large one is left to the timer's chunked maintain(), so a read
   * never does a fleet's roll-up in one go.
   */
  private async freshen(now: number): Promise<void> {
    const n = (await this.db.get<{ n: number }>(this.q.nodeCount))?.n ?? 0;
    if (n <= ROLLUP_CHUNK) await this.rollup(now);
  }

  /** Ends a maintain() in progress after its current batch (the rest waits for the next one). */
  halt(): void { this.halted = true; }

  async nodeSeries(nodeId: number, range: Range, now = Date.now()): Promise<{ step_seconds: number; points: MetricPoint[] }> {
    const since = now - RANGES[range];
    const { res, step } = plan(range);
    if (res === 0) {
      type Raw = { t: number; cpu: number | null; mem: number | null; disk: number | null; load: number | null; rx: number | null; tx: number | null; running: number };
      const points = (await this.db.all<Raw>(this.q.raw, [nodeId, since])).map((p) => ({
        t: p.t, cpu: p.cpu, cpu_max: p.cpu, mem: p.mem, mem_max: p.mem, disk: p.disk, load: p.load, rx: p.rx, rx_max: p.rx, tx: p.tx, tx_max: p.tx, running: p.running,
      }));
      return { step_seconds: 0, points };
    }
    await this.freshen(now);
    const points = (await this.db.all<MetricPoint>(this.q.rollups, { res, step, node: nodeId, since: Math.floor(since / step) * step })).map((p) => ({
      ...p, cpu: r1(p.cpu), mem: r1(p.mem), load: p.load === null ? null : Math.round(p.load * 100) / 100, rx: r1(p.rx), tx: r1(p.tx),
      running: p.running === null ? null : Math.round(p.running * 100) / 100,
    }));
    return { step_seconds: step / 1000, points };
  }

  /** Cluster figures per step: the average node's CPU and memory, the fullest disk, network and running summed. */
  async clusterSeries(range: Range, now = Date.now()): Promise<{ step_seconds: number; points: ClusterPoint[] }> {
    const since = now - RANGES[range];
    // Across all nodes: 1h and 24h from 1-minute buckets, 7d and 30d from 1-hour buckets, 1y from days.
    const res = range === '1h' || range === '24h' ? MINUTE : range === '1y' ? DAY : HOUR;
    const step = res;
    await this.freshen(now);
    const from = Math.floor(since / step) * step;
    const jobs = new Map<number, { finished: number; failed: number; items: number }>();
    // Job counts read the runs that ended in the range: up to 30 days of them, never a year of history on a request.
    if (range !== '1y') for (const j of await this.db.all<{ t: number; finished: number; failed: number; items: number }>(this.q.jobs, { step, since: from })) jobs.set(j.t, j);
    type Row = Omit<ClusterPoint, 'finished' | 'failed' | 'items'>;
    const rows = await this.db.all<Row>(this.q.cluster, { res, step, since: from });
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

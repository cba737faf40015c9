import type { ListedFinishedJob, ListedRunningJob, ListJobsResponse } from '../../common/http/scrapyd_responses.ts';
import type { SqlDb } from '../store/sql_db.ts';

/** What a node last said about one of its jobs: its pid and whether its log and items exist. */
export interface NodeJobFacts {
  pid: number | null;
  logUrl: string | null;
  itemsUrl: string | null;
}

/** Writes wait at most this long to go out with the others that came in meanwhile. */
const FLUSH_MS = 1000;
/** Rows per multi-row upsert (one statement, not one per job: one round trip on PostgreSQL). */
const UPSERT_CHUNK = 50;
/** Changes per transaction: a fleet's first listings (after a start or a takeover) go in several, with the event loop turning between them. */
const TX_CHANGES = 1000;

const upsertSql = (rows: number) => `INSERT INTO node_jobs (node_id, job, pid, log_url, items_url)
  SELECT column1, column2, column3, column4, column5 FROM (VALUES ${Array.from({ length: rows }, () => '(CAST(? AS BIGINT), ?, CAST(? AS BIGINT), ?, ?)').join(', ')}) AS v
  WHERE column1 IN (SELECT id FROM nodes)
  ON CONFLICT (node_id, job) DO UPDATE SET pid = excluded.pid, log_url = excluded.log_url, items_url = excluded.items_url`;
const UPSERT_ONE = upsertSql(1);
const UPSERT_MANY = upsertSql(UPSERT_CHUNK);

type Change = { node_id: number; job: string; facts: NodeJobFacts | null };

const same = (a: NodeJobFacts, b: NodeJobFacts) => a.pid === b.pid && a.logUrl === b.logUrl && a.itemsUrl === b.itemsUrl;

/**
 * Each node's last listjobs.json, kept from the heartbeats in the `node_jobs` table (one row per
 * job a node lists), so every master's Scrapyd facade — not only the one that heartbeats — can
 * give real pids and only the log/items links that exist, without asking every node on every
 * request.
 *
 * Cheap on the heartbeat path: the heartbeating master remembers what it last wrote per node and
 * queues only what changed (a new job, a pid, a job gone); the queue is written in one
 * transaction per second for the whole fleet. A node it has not written yet this process (after
 * a start or a takeover) has its rows replaced whole once.
 */
export class NodeJobsCache {
  /** What this master last wrote per node (absent: not written by this process yet). */
  private readonly written = new Map<number, Map<string, NodeJobFacts>>();
  /** What changed per node since the last flush, by job (the last change of a job wins). */
  private queued = new Map<number, Map<string, Change>>();
  /** Nodes whose rows are cleared before the queued changes are written. */
  private replaced = new Set<number>();
  private flushTimer: NodeJS.Timeout | null = null;
  private flushed: Promise<void> = Promise.resolve();

  constructor(private readonly db: SqlDb) {}

  /**
   * Forgets what this master wrote: after it leads again (another master heartbeated meanwhile),
   * each node's rows are replaced whole at its next heartbeat.
   */
  forgetWritten(): void { this.written.clear(); }

  /** A node's fresh listing: queues what differs from the last one written. */
  record(nodeId: number, jobs: ListJobsResponse): void {
    const facts = new Map<string, NodeJobFacts>();
    const put = (j: ListedRunningJob | ListedFinishedJob, pid: number | null) => facts.set(j.id, { pid, logUrl: j.log_url, itemsUrl: j.items_url });
    for (const j of jobs.finished) put(j, null);
    for (const j of jobs.running) put(j, j.pid);
    const before = this.written.get(nodeId);
    this.written.set(nodeId, facts);
    if (!before) {
      this.replaced.add(nodeId);
      this.queued.set(nodeId, new Map([...facts].map(([job, f]) => [job, { node_id: nodeId, job, facts: f }])));
    } else {
      const changes = this.queued.get(nodeId) ?? new Map<string, Change>();
      for (const [job, f] of facts) {
        const was = before.get(job);
        if (!was || !same(was, f)) changes.set(job, { node_id: nodeId, job, facts: f });
      }
      for (const job of before.keys()) if (!facts.has(job)) changes.set(job, { node_id: nodeId, job, facts: null });
      if (changes.size) this.queued.set(nodeId, changes);
    }
    if (this.queued.size || this.replaced.size) this.schedule();
  }

  /** The node was removed: its rows go with it (also by the foreign key's cascade). */
  forget(nodeId: number): Promise<void> {
    this.written.delete(nodeId);
    this.replaced.add(nodeId);
    this.queued.delete(nodeId);
    return this.flush();
  }

  private schedule(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      this.flush().catch((e) => console.error('[spiderplane-master] writing node job listings failed:', e));
    }, FLUSH_MS);
    this.flushTimer.unref();
  }

  /** Writes the queued changes in one transaction (also on stop, and before a read on this master). */
  flush(): Promise<void> {
    if (this.flushTimer) { clearTimeout(this.flushTimer); this.flushTimer = null; }
    const changes = [...this.queued.values()].flatMap((m) => [...m.values()]);
    const replaced = [...this.replaced];
    this.queued = new Map();
    this.replaced = new Set();
    const write = this.flushed.then(() => (changes.length || replaced.length ? this.write(replaced, changes) : undefined));
    this.flushed = write.catch(() => undefined);
    return write.catch((e) => {
      // Written again whole at the next heartbeat: nothing is lost for longer than a round.
      for (const c of changes) this.written.delete(c.node_id);
      for (const id of replaced) this.written.delete(id);
      throw e;
    });
  }

  /**
   * One transaction at steady state (a few changed jobs per round). A node's rows are cleared in
   * the transaction that writes its first rows back. A node removed meanwhile has no row to refer
   * to: its facts are dropped, not an error.
   */
  private async write(replaced: number[], changes: Change[]): Promise<void> {
    const clear = new Set(replaced);
    for (let i = 0; i < changes.length || clear.size; i += TX_CHANGES) {
      const part = changes.slice(i, i + TX_CHANGES);
      if (i > 0) await new Promise<void>((r) => setImmediate(r));
      await this.db.tx(async () => {
        for (const id of [...clear]) {
          if (i + TX_CHANGES < changes.length && part.length && !part.some((c) => c.node_id === id)) continue;
          clear.delete(id);
          await this.db.run(`DELETE FROM node_jobs WHERE node_id = ?`, [id]);
        }
        for (const c of part) if (c.facts === null) await this.db.run(`DELETE FROM node_jobs WHERE node_id = ? AND job = ?`, [c.node_id, c.job]);
        const rows = part.filter((c) => c.facts !== null).map((c) => [c.node_id, c.job, c.facts!.pid, c.facts!.logUrl, c.facts!.itemsUrl]);
        let k = 0;
        for (; k + UPSERT_CHUNK <= rows.length; k += UPSERT_CHUNK) await this.db.run(UPSERT_MANY, rows.slice(k, k + UPSERT_CHUNK).flat());
        for (; k < rows.length; k++) await this.db.run(UPSERT_ONE, rows[k]!);
      });
    }
  }

  /**
   * What each run's node last listed about it, by "nodeId job" (absent: the node has not listed
   * that job, yet or any more). One query for a page of runs.
   */
  async factsOf(runs: ReadonlyArray<{ node_id: number | null; job: string }>): Promise<Map<string, NodeJobFacts>> {
    const out = new Map<string, NodeJobFacts>();
    const jobs = [...new Set(runs.filter((r) => r.node_id !== null).map((r) => r.job))];
    if (!jobs.length) return out;
    await this.flush(); // on the master that heartbeats, what it heard last; elsewhere, at most a second old
    type Row = { node_id: number; job: string; pid: number | null; log_url: string | null; items_url: string | null };
    const rows = await this.db.all<Row>(`SELECT node_id, job, pid, log_url, items_url FROM node_jobs WHERE ${this.db.sql.inJsonArray('job', 'text')}`, [JSON.stringify(jobs)]);
    for (const r of rows) out.set(factsKey(r.node_id, r.job), { pid: r.pid, logUrl: r.log_url, itemsUrl: r.items_url });
    return out;
  }

  /** One run's facts (undefined: its node has not listed it). */
  async get(nodeId: number | null, job: string): Promise<NodeJobFacts | undefined> {
    if (nodeId === null) return undefined;
    return (await this.factsOf([{ node_id: nodeId, job }])).get(factsKey(nodeId, job));
  }
}

export function factsKey(nodeId: number, job: string): string {
  return `${nodeId} ${job}`;
}

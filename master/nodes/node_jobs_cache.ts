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
  private queued: Change[] = [];
  /** Nodes whose rows are cleared before the queued changes are written. */
  private replaced = new Set<number>();
  private flushTimer: NodeJS.Timeout | null = null;
  private flushed: Promise<void> = Promise.resolve();

  constructor(private readonly db: SqlDb) {}

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
      this.queued = this.queued.filter((c) => c.node_id !== nodeId);
      for (const [job, f] of facts) this.queued.push({ node_id: nodeId, job, facts: f });
    } else {
      for (const [job, f] of facts) {
        const was = before.get(job);
        if (!was || !same(was, f)) this.queued.push({ node_id: nodeId, job, facts: f });
      }
      for (const job of before.keys()) if (!facts.has(job)) this.queued.push({ node_id: nodeId, job, facts: null });
    }
    if (this.queued.length || this.replaced.size) this.schedule();
  }

  /** The node was removed: its rows go with it (also by the foreign key's cascade). */
  forget(nodeId: number): Promise<void> {
    this.written.delete(nodeId);
    this.replaced.add(nodeId);
    this.queued = this.queued.filter((c) => c.node_id !== nodeId);
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
    const changes = this.queued;
    const replaced = [...this.replaced];
    this.queued = [];
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

  private write(replaced: number[], changes: Change[]): Promise<void> {
    return this.db.tx(async () => {
      for (const id of replaced) await this.db.run(`DELETE FROM node_jobs WHERE node_id = ?`, [id]);
      for (const c of changes) {
        if (c.facts === null) {
          await this.db.run(`DELETE FROM node_jobs WHERE node_id = ? AND job = ?`, [c.node_id, c.job]);
        } else {
          // A node removed meanwhile has no row to refer to: its facts are dropped, not an error.
          await this.db.run(`INSERT INTO node_jobs (node_id, job, pid, log_url, items_url) SELECT id, ?, ?, ?, ? FROM nodes WHERE id = ?
                             ON CONFLICT (node_id, job) DO UPDATE SET pid = excluded.pid, log_url = excluded.log_url, items_url = excluded.items_url`,
          [c.job, c.facts.pid, c.facts.logUrl, c.facts.itemsUrl, c.node_id]);
        }
      }
    });
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

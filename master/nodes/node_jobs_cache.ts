import type { ListedFinishedJob, ListedRunningJob, ListJobsResponse } from '../../common/http/scrapyd_responses.ts';

/** What a node last said about one of its jobs: its pid and whether its log and items exist. */
export interface NodeJobFacts {
  pid: number | null;
  logUrl: string | null;
  itemsUrl: string | null;
}

/**
 * Each node's last listjobs.json, kept from the heartbeats (in memory, replaced each round), so
 * the master's Scrapyd facade can give real pids and only the log/items links that exist —
 * without asking every node on every request.
 */
export class NodeJobsCache {
  private readonly byNode = new Map<number, Map<string, NodeJobFacts>>();

  record(nodeId: number, jobs: ListJobsResponse): void {
    const facts = new Map<string, NodeJobFacts>();
    const put = (j: ListedRunningJob | ListedFinishedJob, pid: number | null) => facts.set(j.id, { pid, logUrl: j.log_url, itemsUrl: j.items_url });
    for (const j of jobs.finished) put(j, null);
    for (const j of jobs.running) put(j, j.pid);
    this.byNode.set(nodeId, facts);
  }

  forget(nodeId: number): void {
    this.byNode.delete(nodeId);
  }

  /** undefined: the node has not listed this job (yet, or any more). */
  get(nodeId: number | null, job: string): NodeJobFacts | undefined {
    return nodeId === null ? undefined : this.byNode.get(nodeId)?.get(job);
  }
}

import { jobItemsPath, jobLogPath } from '../../slave/http/html_views.ts';
import type { Master } from '../master.ts';
import type { RunRow } from '../runs/run_store.ts';
import { factsKey } from '../nodes/node_jobs_cache.ts';

/** One run as the master's Scrapyd surface shows it (/jobs and listjobs.json). */
export interface ScrapydJobRow {
  run: RunRow;
  /** From the node's last listjobs.json; null when not running or not known. */
  pid: number | null;
  /** Paths on the master (which serves every node's /logs/ and /items/), or null: no such file. */
  logUrl: string | null;
  itemsUrl: string | null;
}

/** Scrapyd keeps this many finished jobs in /jobs and listjobs.json (finished_to_keep). */
export const FINISHED_TO_KEEP = 100;

/**
 * The cluster's runs in Scrapyd's three lists. Links exist when the node said so in its last
 * listjobs.json; for runs it no longer lists, a started run has a log and a run that counted
 * items has an items file.
 */
export async function scrapydJobRows(m: Master, project?: string): Promise<{ pending: ScrapydJobRow[]; running: ScrapydJobRow[]; finished: ScrapydJobRow[] }> {
  const row = (r: RunRow, running: boolean): ScrapydJobRow => {
    const facts = r.node_id === null ? undefined : known.get(factsKey(r.node_id, r.job));
    const hasLog = facts ? facts.logUrl !== null : r.node_id !== null && r.started_at !== null;
    const hasItems = facts ? facts.itemsUrl !== null : (r.items_count ?? 0) > 0;
    return {
      run: r,
      pid: running ? facts?.pid ?? null : null,
      logUrl: hasLog ? jobLogPath(r.project, r.spider, r.job) : null,
      itemsUrl: hasItems ? jobItemsPath(r.project, r.spider, r.job) : null,
    };
  };
  const [pending, running, finished] = await Promise.all([
    m.runs.pendingList(project),
    m.runs.runningList(project),
    // Filtered before the limit (by an index): a quiet project still lists its own newest.
    m.runs.finishedList(FINISHED_TO_KEEP, project),
  ]);
  const known = await m.nodeJobs.factsOf([...running, ...finished]);
  return {
    pending: pending.map((r) => ({ run: r, pid: null, logUrl: null, itemsUrl: null })),
    running: running.map((r) => row(r, true)),
    finished: finished.map((r) => row(r, false)),
  };
}

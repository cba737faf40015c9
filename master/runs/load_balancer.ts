// Least-load targeting. A node's load is (running + pending) from its last heartbeat, plus what
// the masters dispatched to it since that heartbeat was requested, over its capacity. Counting our
// own dispatches is what spreads a burst of 30 calls evenly instead of piling on the node that
// looked idle at the last heartbeat. The counts live in the database (DispatchLoadStore), so every
// master sharing it sees every master's dispatches; the choice itself is pure (pickLeastLoaded).
import type { DispatchCounts, DispatchLoadStore } from './dispatch_load_store.ts';

export interface Candidate {
  id: number;
  name: string;
  running: number;
  pending: number;
  capacity: number;
}

const RECENT_MS = 60_000;
/** Dispatches older than this are not read: a heartbeat has long counted them. */
const WINDOW_MS = RECENT_MS * 2;
const NONE: DispatchCounts = { sinceHeartbeat: 0, recent: 0 };

export function loadOf(c: Candidate, counts: DispatchCounts = NONE): number {
  return (c.running + c.pending + counts.sinceHeartbeat) / Math.max(1, c.capacity);
}

/** The n least-loaded candidates; ties go to the fewest recent dispatches, then by name. */
export function pickLeastLoaded(candidates: readonly Candidate[], counts: ReadonlyMap<number, DispatchCounts>, n: number): Candidate[] {
  return [...candidates]
    .map((c) => ({ c, load: loadOf(c, counts.get(c.id)), recent: counts.get(c.id)?.recent ?? 0 }))
    .sort((a, b) => a.load - b.load || a.recent - b.recent || (a.c.name < b.c.name ? -1 : a.c.name > b.c.name ? 1 : 0))
    .slice(0, n)
    .map((x) => x.c);
}

export class LoadBalancer {
  constructor(private readonly store: DispatchLoadStore) {}

  /**
   * Runs a choice and the insert of its runs as one step: in one transaction holding the dispatch
   * lock, so the next choice (on any master) counts these runs.
   */
  choosing<T>(fn: () => Promise<T>): Promise<T> { return this.store.choosing(fn); }

  /** A heartbeat requested at requestedAt already counts every dispatch made before then. */
  recordHeartbeat(nodeId: number, requestedAt: number): Promise<void> {
    return this.store.heartbeat(nodeId, requestedAt);
  }

  forget(nodeId: number): Promise<void> { return this.store.forget(nodeId); }

  /** The n least-loaded candidates (call it inside `choosing`, with the runs it leads to inserted there too). */
  async pick(candidates: readonly Candidate[], n: number, now = Date.now()): Promise<Candidate[]> {
    const counts = await this.store.counts(candidates.map((c) => c.id), now, RECENT_MS, WINDOW_MS);
    return pickLeastLoaded(candidates, counts, n);
  }
}

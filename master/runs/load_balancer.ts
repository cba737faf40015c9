// Least-load targeting. A node's load is (running + pending) from its last heartbeat, plus what
// the master dispatched to it since that heartbeat was requested, over its capacity. Counting our
// own dispatches is what spreads a burst of 30 calls evenly instead of piling on the node that
// looked idle at the last heartbeat.

export interface Candidate {
  id: number;
  name: string;
  running: number;
  pending: number;
  capacity: number;
}

const RECENT_MS = 60_000;

export class LoadBalancer {
  /** node id -> times (ms) of dispatches the master made to it */
  private readonly dispatches = new Map<number, number[]>();
  /** node id -> when the last heartbeat that reported running/pending was requested */
  private readonly heartbeatAt = new Map<number, number>();

  recordDispatch(nodeId: number, now = Date.now()): void {
    const list = this.dispatches.get(nodeId) ?? [];
    list.push(now);
    this.dispatches.set(nodeId, list.filter((t) => now - t < RECENT_MS * 2));
  }

  /** A heartbeat requested at requestedAt already counts every dispatch made before then. */
  recordHeartbeat(nodeId: number, requestedAt: number): void {
    this.heartbeatAt.set(nodeId, requestedAt);
  }

  forget(nodeId: number): void {
    this.dispatches.delete(nodeId);
    this.heartbeatAt.delete(nodeId);
  }

  private sinceHeartbeat(nodeId: number): number {
    const since = this.heartbeatAt.get(nodeId) ?? 0;
    return (this.dispatches.get(nodeId) ?? []).filter((t) => t >= since).length;
  }

  private recent(nodeId: number, now: number): number {
    return (this.dispatches.get(nodeId) ?? []).filter((t) => now - t < RECENT_MS).length;
  }

  load(c: Candidate): number {
    return (c.running + c.pending + this.sinceHeartbeat(c.id)) / Math.max(1, c.capacity);
  }

  /** The n least-loaded candidates; ties go to the fewest recent dispatches, then by name. */
  pick(candidates: readonly Candidate[], n: number, now = Date.now()): Candidate[] {
    return [...candidates]
      .map((c) => ({ c, load: this.load(c), recent: this.recent(c.id, now) }))
      .sort((a, b) => a.load - b.load || a.recent - b.recent || (a.c.name < b.c.name ? -1 : a.c.name > b.c.name ? 1 : 0))
      .slice(0, n)
      .map((x) => x.c);
  }
}

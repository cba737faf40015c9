import { ifLeader, unfenced, type Fence } from '../cluster/fence.ts';
import { EventEmitter } from 'node:events';
import type { NodeRegistry, NodeRow } from './node_registry.ts';
import type { ListedJobs, NodeClient } from './node_client.ts';
import { eventLoopLag } from '../../common/event_loop_lag.ts';

/** Nodes polled together; the slices of a round are spread over SPREAD of the interval. */
const SLICE = 25;
const SPREAD = 0.8;

export interface HeartbeatOptions {
  intervalMs: number;
  timeoutMs: number;
  offlineAfterMs: number;
}

export interface HeartbeatResult {
  node: NodeRow;
  jobs: ListedJobs;
  /** Master clock when the heartbeat was requested: everything dispatched before it is in `jobs`. */
  requestedAt: number;
}

/** Tells how long the master's own event loop has been stalled in total (monotonic, ms). */
export interface StallClock {
  stalledMs(): number;
}

/**
 * Polls every node in parallel each interval. A node is online while its last good heartbeat,
 * timed by the master's own clock at receipt, is younger than offlineAfter — a slave's clock is
 * never consulted, so servers whose clocks drift apart are judged the same. Each node has at most
 * one heartbeat in flight, so a slow or dead node never delays the others.
 *
 * A node is never judged offline for a silence the master caused itself: the time the master's
 * event loop was stalled since the node's last good heartbeat (a long synchronous task, the
 * process stopped or its VM paused — anything during which answers could not be read) is taken
 * off the node's silence.
 *
 * Events: 'heartbeat' (HeartbeatResult), 'online' (NodeRow), 'offline' (NodeRow).
 */
export class Heartbeat extends EventEmitter {
  private timer: NodeJS.Timeout | null = null;
  private readonly slices = new Set<NodeJS.Timeout>();
  private readonly inFlight = new Set<number>();
  private readonly startedAt = Date.now();
  /** The master's stall total when each node was last heard from (in this process). */
  private readonly stallAtHeard = new Map<number, number>();
  private readonly stallAtStart: number;
  /** Offline verdicts are the leader's writes (master/cluster/fence.ts). */
  fence: Fence = unfenced;
  /**
   * A leader duty: idle until start(). Set by stop(): an answer that arrives later is not recorded
   * (the database may be closed by then).
   */
  private stopped = true;

  constructor(
    private readonly registry: NodeRegistry,
    private readonly clientFor: (node: NodeRow, timeoutMs?: number) => NodeClient,
    private readonly opts: HeartbeatOptions,
    private readonly stalls: StallClock = eventLoopLag(),
  ) {
    super();
    this.stallAtStart = stalls.stalledMs();
  }

  start(): void {
    this.stopped = false;
    this.round();
    this.timer = setInterval(() => this.round(), this.opts.intervalMs);
  }

  /** A round from the timer: a failed one (the database down) is logged, the next one tries again. */
  private round(): void {
    this.tick().catch((e) => console.error('[spiderplane-master] heartbeat round failed:', e));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const t of this.slices) clearTimeout(t);
    this.slices.clear();
  }

  /**
   * One round: judge every node on the master's clock, then poll the ones not already being
   * polled — in slices of SLICE nodes spread over most of the interval, so 1 000 nodes are 40
   * small bursts, not 2 000 requests and their answers in one turn of the event loop.
   */
  async tick(): Promise<void> {
    const now = Date.now();
    const nodes = await this.registry.all();
    for (const node of nodes) await this.judge(node, now);
    const slices = Math.ceil(nodes.length / SLICE);
    const gap = slices > 1 ? (this.opts.intervalMs * SPREAD) / slices : 0;
    for (let j = 0; j < slices; j++) {
      const rows = nodes.slice(j * SLICE, (j + 1) * SLICE);
      const pollSlice = () => { for (const row of rows) if (!this.inFlight.has(row.id)) void this.pollNode(row); };
      if (j === 0) { pollSlice(); continue; }
      const t = setTimeout(() => { this.slices.delete(t); pollSlice(); }, Math.round(j * gap));
      t.unref();
      this.slices.add(t);
    }
  }

  /** Polls one node now (also used right after a node is added or announces itself). */
  async poll(nodeId: number): Promise<void> {
    if (this.inFlight.has(nodeId)) return;
    const node = await this.registry.byId(nodeId);
    if (node) await this.pollNode(node);
  }

  /** Polls a node whose row was just read (a round reads them all at once: no read per node). */
  private async pollNode(node: NodeRow): Promise<void> {
    const nodeId = node.id;
    if (this.inFlight.has(nodeId)) return;
    this.inFlight.add(nodeId);
    const requestedAt = Date.now();
    try {
      const client = this.clientFor(node, this.opts.timeoutMs);
      // listjobs.json carries what daemonstatus.json would (the pending and running counts): two requests, not three.
      const [metrics, jobs] = await Promise.all([client.metrics().catch(() => null), client.listJobs()]);
      const receivedAt = Date.now();
      if (this.stopped) return;
      let fresh = await this.registry.recordHeartbeat(nodeId, {
        now: receivedAt, running: jobs.running.length, pending: jobs.pending.length, maxProc: metrics?.max_proc ?? null, metrics,
      });
      if (!fresh) { this.stallAtHeard.delete(nodeId); return; } // removed meanwhile
      this.stallAtHeard.set(nodeId, this.stalls.stalledMs());
      if (fresh.status !== 'online') {
        await this.registry.setStatus(fresh, 'online', fresh.status === 'offline' ? 'heartbeats resumed' : 'first heartbeat', receivedAt);
        const now = await this.registry.byId(nodeId);
        if (!now) return; // removed meanwhile
        fresh = now;
        this.emit('online', fresh);
      }
      this.emit('heartbeat', { node: fresh, jobs, requestedAt } satisfies HeartbeatResult);
    } catch (e) {
      if (this.stopped) return;
      // A no-op when the node was removed meanwhile; a database error here is logged, never thrown.
      await this.registry.recordFailure(nodeId, (e as Error).message, requestedAt).catch((e2) => console.error('[spiderplane-master] recording a failed heartbeat:', e2));
    } finally {
      this.inFlight.delete(nodeId);
    }
  }

  private async judge(node: NodeRow, now: number): Promise<void> {
    if (node.status === 'offline') return;
    // Silence is counted from the last good heartbeat, but never from before the master itself
    // started: after a master restart every node gets a full window to answer before it is
    // declared dead and its runs are failed over.
    const heardAt = Math.max(node.last_ok_at ?? node.added_at, this.startedAt);
    const masterStalled = Math.max(0, this.stalls.stalledMs() - (this.stallAtHeard.get(node.id) ?? this.stallAtStart));
    const silent = now - heardAt - masterStalled;
    if (silent <= this.opts.offlineAfterMs) return;
    const stallNote = masterStalled >= 1000 ? ` (not counting ${Math.round(masterStalled / 1000)} s the master itself was stalled)` : '';
    const why = `no good heartbeat for ${Math.round(silent / 1000)} s${stallNote}${node.last_error ? `: ${node.last_error}` : ''}`;
    // Refused when this master no longer leads: no failover from a deposed leader.
    if ((await ifLeader(this.fence, async () => { await this.registry.setStatus(node, 'offline', why, now); return true; })) === undefined) return;
    const after = await this.registry.byId(node.id);
    if (after) this.emit('offline', after);
  }
}

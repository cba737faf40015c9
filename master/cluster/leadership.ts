import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { SqlDb } from '../store/sql_db.ts';
import { LeaderStore, type MasterRow } from './leader_store.ts';
import { NotLeader } from './fence.ts';

/**
 * Which master leads: exactly one at a time, elected through a lease in the shared database.
 *
 * Guarantees:
 * - At most one master holds a live lease; it holds it for `ttlMs` from its last renewal on the
 *   database's clock, and renews every `renewMs`. A standby takes a lease that has expired, so a
 *   dead leader is replaced within ttlMs + renewMs (about 12 s by default).
 * - Every write only a leader may make goes through `fenced()`: one transaction that first checks,
 *   with the lease row locked against takeover, that this master's epoch is still the current one.
 *   A leader that lost the lease (paused, cut off from the database, slow) has its writes refused
 *   (NotLeader) and steps down, even before its own renewal notices.
 * - A leader also steps down by its own monotonic clock once `ttlMs` has passed since its last
 *   successful renewal, so it stops acting while it cannot reach the database.
 */
export interface LeadershipEvents {
  /** This master now leads, with this epoch: start the leader's work (after reconciling). */
  elected: [epoch: number];
  /** This master no longer leads: stop the leader's work at once. */
  deposed: [reason: string];
}

export { NotLeader };

export interface LeadershipOptions {
  ttlMs: number;
  renewMs: number;
  url: () => string | null;
  /**
   * Take the lease at start even from a live holder (SQLite: one master per database file, so a
   * holder can only be this master's own previous process, killed before it could let go).
   */
  takeOverAtStart?: boolean;
  /** This master's id: stable across restarts of one master (its data folder keeps it). */
  id?: string;
}

export class Leadership extends EventEmitter<LeadershipEvents> {
  readonly id: string;
  readonly startedAt = Date.now();
  private readonly store: LeaderStore;
  private held: number | null = null;
  /** performance.now() of the last renewal that succeeded. */
  private renewedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly db: SqlDb, private readonly opts: LeadershipOptions) {
    super();
    this.store = new LeaderStore(db);
    this.id = opts.id ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  }

  get isLeader(): boolean { return this.held !== null; }
  /** The epoch this master leads with, or null. */
  get epoch(): number | null { return this.held; }

  /** Tries at once (a lone master leads before it serves its first request), then every renewMs. */
  async start(): Promise<void> {
    this.stopped = false;
    // A lease still held under this master's own id was its previous process's (killed before it
    // let go): taken back at once, with a new epoch, instead of waiting for it to expire.
    if (this.opts.takeOverAtStart || (await this.store.lease()).holder === this.id) await this.store.takeOver(this.id);
    await this.tick();
    this.timer = setInterval(() => { void this.tick(); }, this.opts.renewMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
    const epoch = this.held;
    if (epoch !== null) {
      this.stepDown('this master is stopping');
      await this.store.release(this.id, epoch).catch(() => undefined);
    }
    await this.store.forget(this.id).catch(() => undefined);
  }

  private tick(): Promise<void> {
    if (this.ticking) return this.ticking;
    this.ticking = this.renew().finally(() => { this.ticking = null; });
    return this.ticking;
  }

  private async renew(): Promise<void> {
    if (this.stopped) return;
    // Past its own deadline the leader stops acting before it even asks: the lease may be gone.
    if (this.held !== null && performance.now() - this.renewedAt > this.opts.ttlMs) {
      this.stepDown('its lease ran out before it could renew it');
    }
    const asked = performance.now();
    let epoch: number | null;
    try {
      await this.store.seen({ id: this.id, url: this.opts.url(), host: hostname(), pid: process.pid, started_at: this.startedAt }, this.opts.ttlMs * 30);
      epoch = await this.store.acquire(this.id, this.held, this.opts.ttlMs);
    } catch (e) {
      console.error(`[spiderplane-master] the leader lease could not be read or renewed: ${(e as Error).message}`);
      return;
    }
    if (this.stopped) return;
    if (epoch === null) {
      if (this.held !== null) this.stepDown('another master took the lease');
      return;
    }
    // The lease counts from when it was asked for, not from when the answer came.
    this.renewedAt = asked;
    if (this.held !== null && this.held !== epoch) this.stepDown('its lease expired and was taken again with a new epoch');
    if (this.held === null) {
      this.held = epoch;
      console.log(`[spiderplane-master] this master (${this.id}) leads, epoch ${epoch}`);
      this.emit('elected', epoch);
    }
  }

  private stepDown(reason: string): void {
    if (this.held === null) return;
    console.log(`[spiderplane-master] this master (${this.id}) no longer leads epoch ${this.held}: ${reason}`);
    this.held = null;
    this.emit('deposed', reason);
  }

  /**
   * Runs `fn` in one transaction that first proves this master still leads with the epoch it was
   * elected with; throws NotLeader (and steps down) when it does not. Keep `fn` to database work:
   * the lease row stays locked against a takeover until it ends.
   */
  async fenced<T>(fn: () => Promise<T>): Promise<T> {
    const epoch = this.held;
    if (epoch === null) throw new NotLeader();
    return this.db.tx(async () => {
      if (!(await this.store.holds(this.id, epoch))) {
        if (this.held === epoch) this.stepDown('a write found its epoch was no longer current');
        throw new NotLeader();
      }
      return fn();
    });
  }

  async status(withinMs: number): Promise<{ id: string; leader: boolean; epoch: number; leader_id: string | null; masters: Array<MasterRow & { leader: boolean }> }> {
    const [lease, masters] = await Promise.all([this.store.lease(), this.store.masters(withinMs)]);
    const live = lease.expires_at > lease.now ? lease.holder : null;
    return {
      id: this.id, leader: this.isLeader, epoch: lease.epoch, leader_id: live,
      masters: masters.map((m) => ({ ...m, leader: m.id === live })),
    };
  }
}

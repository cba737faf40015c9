// The slave's lease from its master. A master tells its window in every request it makes
// (header X-Spiderplane-Lease: seconds = its --offline-after); announcing to it also counts as
// contact. When no master has been heard from for the window, the master has judged this node
// offline and failed over its runs: the lease has expired, and the runs it failed over must stop.
// `--master-lease SECONDS` sets the window before a master told one (0 = never expire).
// Pure logic on a monotonic clock: no I/O.

export const LEASE_HEADER = 'x-spiderplane-lease';

export class MasterLease {
  private toldMs: number | null = null;
  private lastContact: number | null;

  constructor(
    /** --master-lease: null = only what a master tells; 0 = leases off */
    private readonly flagSeconds: number | null,
    /** a master is configured (--master) or a window was given: the lease runs from start */
    runsFromStart: boolean,
    private readonly now: () => number = monotonicMs,
  ) {
    this.lastContact = runsFromStart ? now() : null;
  }

  /** The window in ms, or null when none applies. */
  get windowMs(): number | null {
    if (this.flagSeconds === 0) return null;
    if (this.toldMs !== null) return this.toldMs;
    return this.flagSeconds === null ? null : this.flagSeconds * 1000;
  }

  /** A master reached us; `header` is its X-Spiderplane-Lease value when it sent one. Returns true when the window changed. */
  contact(header?: string | null): boolean {
    this.lastContact = this.now();
    if (header === undefined || header === null) return false;
    const s = Number(header);
    if (!Number.isFinite(s) || s <= 0 || s > 7 * 24 * 3600) return false;
    const ms = Math.round(s * 1000);
    if (ms === this.toldMs) return false;
    this.toldMs = ms;
    return true;
  }

  /** The window a master told before this daemon restarted (persisted), until a master tells one again. */
  seed(ms: number | null): void {
    if (this.toldMs === null && ms !== null && Number.isFinite(ms) && ms > 0) this.toldMs = ms;
  }

  /** The window a master told, for persisting. */
  get toldWindowMs(): number | null { return this.toldMs; }

  /** ms since the last master contact, or null before any. */
  sinceContactMs(): number | null {
    return this.lastContact === null ? null : this.now() - this.lastContact;
  }

  /** ms until the lease expires (<= 0: expired), or null when it cannot expire. */
  remainingMs(): number | null {
    const w = this.windowMs;
    const since = this.sinceContactMs();
    return w === null || since === null ? null : w - since;
  }

  expired(): boolean {
    const r = this.remainingMs();
    return r !== null && r <= 0;
  }
}

export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

// History retention of the master: ended runs older than --history-days, and the oldest ended
// runs beyond --history-max-runs, are deleted in small batches off the request path — one
// batch per turn of the event loop, never one long DELETE. Active runs are never deleted, nor a
// lost run its node may still give back (RunStore.LOST_TAKE_BACK_MS).
import type { RunStore } from './run_store.ts';

export interface RetentionOptions {
  /** Ended runs older than this are deleted; 0 keeps them whatever their age. */
  maxAgeMs: number;
  /** At most this many runs are kept (the oldest ended go first); 0 = no cap. */
  maxRuns: number;
  /** Rows per DELETE (each one short: a few ms). */
  batch?: number;
  /** How often a pass runs. */
  intervalMs?: number;
}

const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

export class RunRetention {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;
  private stopped = false;
  private readonly batch: number;

  constructor(private readonly runs: RunStore, private readonly opts: RetentionOptions) {
    this.batch = opts.batch ?? 500;
  }

  start(): void {
    this.stopped = false;
    if (this.opts.maxAgeMs <= 0 && this.opts.maxRuns <= 0) return;
    const tick = () => { this.prune().catch((e) => console.error('[spiderplane-master] history retention:', e)); };
    this.timer = setInterval(tick, this.opts.intervalMs ?? 60_000);
    this.timer.unref();
    setImmediate(tick);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One pass: deletes what the limits no longer keep, a batch at a time; returns how many runs went. */
  prune(now = Date.now()): Promise<number> {
    this.running ??= this.pass(now).finally(() => { this.running = null; });
    return this.running;
  }

  private async pass(now: number): Promise<number> {
    let deleted = 0;
    if (this.opts.maxAgeMs > 0) {
      for (;;) {
        if (this.stopped) return deleted;
        const n = await this.runs.pruneEndedBefore(now - this.opts.maxAgeMs, this.batch, now);
        deleted += n;
        if (n < this.batch) break;
        await yieldToLoop();
      }
    }
    if (this.opts.maxRuns > 0) {
      for (;;) {
        if (this.stopped) return deleted;
        const over = (await this.runs.total()) - this.opts.maxRuns;
        if (over <= 0) break;
        const n = await this.runs.pruneOldestEnded(Math.min(over, this.batch), now);
        deleted += n;
        if (n === 0) break; // only active (or recently lost) runs are left over the cap
        await yieldToLoop();
      }
    }
    return deleted;
  }
}

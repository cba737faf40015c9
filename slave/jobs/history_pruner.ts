// Keeps at most --history-to-keep finished job records, off the job-end path: a timer deletes the
// oldest beyond the limit in small batches (one short transaction each, with a turn of the event
// loop between), so no job end and no request ever waits for pruning.
import type { JobStore } from './job_store.ts';

const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

export class HistoryPruner {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;
  private stopped = false;

  constructor(private readonly jobs: JobStore, private readonly keep: number, private readonly intervalMs = 10_000, private readonly batch = 500) {}

  start(): void {
    this.timer = setInterval(() => { void this.prune().catch((e) => console.error('[spiderplane-slave] pruning the job history failed:', e)); }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One pass: batches until the history is within its limit; returns how many records went. */
  prune(): Promise<number> {
    this.running ??= (async () => {
      let deleted = 0;
      while (!this.stopped) {
        const n = this.jobs.pruneFinished(this.keep, this.batch);
        deleted += n;
        if (n < this.batch) break;
        await yieldToLoop();
      }
      return deleted;
    })().finally(() => { this.running = null; });
    return this.running;
  }
}

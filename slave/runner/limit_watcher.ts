import type { LimitHit } from '../../common/types.ts';
import { breach, type Watched } from './limits.ts';
import { childrenOf, readProcTableSliced, treeRss } from './process_tree.ts';

/**
 * One timer per slave that samples every running job with a limit: the runtime against the clock,
 * and — only when some job has a memory limit — one scan of /proc for the RSS of every job's
 * process tree, read in slices so the event loop never waits long. It runs only while such jobs
 * exist, never overlaps itself, and reports each breach once per job.
 */
export class LimitWatcher {
  private timer: NodeJS.Timeout | null = null;
  private readonly reported = new Set<number>();
  private busy = false;

  constructor(
    private readonly jobs: () => Watched[],
    private readonly onBreach: (uid: number, hit: LimitHit) => void,
    private readonly intervalMs = 500,
  ) {}

  /** Call whenever a job starts: arms the timer if any running job has a limit. */
  wake(): void {
    if (this.timer || !this.jobs().some(hasLimit)) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const watched = this.jobs().filter(hasLimit);
      for (const uid of this.reported) if (!watched.some((w) => w.uid === uid)) this.reported.delete(uid);
      if (!watched.length) {
        this.stop();
        return;
      }
      const needMemory = watched.some((w) => w.limits.max_memory !== null && !this.reported.has(w.uid));
      const table = needMemory ? await readProcTableSliced() : null;
      const kids = table ? childrenOf(table) : null;
      const now = Date.now() / 1000;
      // Jobs that ended during the scan are skipped: their pid may already belong to someone else.
      const still = new Set(this.jobs().map((w) => w.uid));
      for (const w of watched) {
        if (this.reported.has(w.uid) || !still.has(w.uid)) continue;
        const rss = table && w.limits.max_memory !== null ? treeRss(table, w.pid, kids!) : null;
        const hit = breach(w.limits, { elapsedSeconds: now - w.startTime, rssBytes: rss });
        if (hit) {
          this.reported.add(w.uid);
          this.onBreach(w.uid, hit);
        }
      }
    } finally {
      this.busy = false;
    }
  }
}

function hasLimit(w: Watched): boolean {
  return w.pid > 0 && (w.limits.max_runtime !== null || w.limits.max_memory !== null);
}

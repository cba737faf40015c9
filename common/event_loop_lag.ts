/**
 * How late this process's event loop runs, measured from inside: one shared monitor per process
 * (the master and a --local-slave in the same process share it).
 *
 * Guarantees:
 *  - A sampler timer asks to run every SAMPLE_MS; how late it actually runs is the loop's lag at
 *    that moment (what perf_hooks.monitorEventLoopDelay measures, but with samples we can merge
 *    into a sliding window). p50, p99 and max cover the last WINDOW_MS, so a stall stays visible in
 *    /metrics for a minute after it happened. A stall is measured to within one sampling interval
 *    (a stall of X ms shows as X - SAMPLE_MS to X): 50 ms by default, a trade between precision and
 *    the cost of waking an idle daemon (~20 wake-ups a second); SPIDERPLANE_LAG_SAMPLE_MS changes
 *    it (bench/upload_stall.bench.ts uses 5 for a precise worst stall).
 *  - stalledMs() is a monotonic total of the time the loop was held up by more than STALL_MS at a
 *    time — a long synchronous task, a GC pause, or the whole process stopped (SIGSTOP, a VM
 *    paused): the sampler's drift shows all of them once the process runs again. It includes a
 *    stall still in progress (the sampler has not run yet), so code that runs first thing after
 *    the loop resumes — whatever order the due timers fire in — already sees the stall.
 *  - The sampler's timer is unref'd: it never keeps a process alive.
 */
import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';

/** How often the sampler wants to run (ms). */
export const SAMPLE_MS = sampleMsFrom(process.env.SPIDERPLANE_LAG_SAMPLE_MS);

function sampleMsFrom(raw: string | undefined): number {
  const n = Number(raw);
  return raw !== undefined && Number.isFinite(n) && n >= 1 && n <= 1000 ? n : 50;
}
/** Lateness from which a sample counts as a stall of the loop (its whole lateness is counted). */
export const STALL_MS = 100;
/** p50/p99/max cover this much of the recent past. */
export const WINDOW_MS = 60_000;
const SLICE_MS = 10_000;

export interface LagFigures {
  /** Lag percentiles and maximum over the last window_seconds, in milliseconds. */
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  window_seconds: number;
  /** Time the loop was stalled (lag over stall_threshold_ms at a time) since the monitor started. */
  stalled_ms_total: number;
  stall_threshold_ms: number;
}

export class EventLoopLag {
  private timer: NodeJS.Timeout | null = null;
  private lastRun = 0;
  private stalledTotal = 0;
  /** Finished slices, oldest first, each covering SLICE_MS; the current slice is `current`. */
  private slices: Array<{ start: number; h: RecordableHistogram }> = [];
  private current = { start: 0, h: createHistogram() };

  constructor(private readonly sampleMs = SAMPLE_MS, private readonly stallMs = STALL_MS) {}

  start(): this {
    if (this.timer) return this;
    this.lastRun = performance.now();
    this.current = { start: this.lastRun, h: createHistogram() };
    this.schedule();
    return this;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    this.timer = setTimeout(() => this.sample(), this.sampleMs);
    this.timer.unref();
  }

  private sample(): void {
    const now = performance.now();
    const late = Math.max(0, now - this.lastRun - this.sampleMs);
    this.lastRun = now;
    if (late >= this.stallMs) this.stalledTotal += late;
    if (now - this.current.start >= SLICE_MS) {
      this.slices.push(this.current);
      this.current = { start: now, h: createHistogram() };
      while (this.slices.length > 0 && now - this.slices[0]!.start > WINDOW_MS) this.slices.shift();
    }
    this.current.h.record(Math.max(1, Math.round(late * 1000))); // microseconds; a histogram needs >= 1
    this.schedule();
  }

  /** The stall in progress: how much later than due the sampler is right now (0 below the threshold). */
  private ongoingMs(): number {
    if (!this.timer) return 0;
    const late = performance.now() - this.lastRun - this.sampleMs;
    return late >= this.stallMs ? late : 0;
  }

  /** Total stalled time so far, a stall in progress included. Monotonic. */
  stalledMs(): number {
    return this.stalledTotal + this.ongoingMs();
  }

  figures(): LagFigures {
    const all = createHistogram();
    for (const s of this.slices) all.add(s.h);
    all.add(this.current.h);
    const ms = (us: number) => Math.round(us) / 1000;
    const ongoing = this.ongoingMs();
    return {
      p50_ms: all.count ? ms(all.percentile(50)) : 0,
      p99_ms: all.count ? ms(all.percentile(99)) : 0,
      max_ms: Math.max(all.count ? ms(all.max) : 0, Math.round(ongoing * 1000) / 1000),
      window_seconds: WINDOW_MS / 1000,
      stalled_ms_total: Math.round(this.stalledTotal + ongoing),
      stall_threshold_ms: this.stallMs,
    };
  }
}

let shared: EventLoopLag | null = null;

/** The process's monitor, started on first use. */
export function eventLoopLag(): EventLoopLag {
  shared ??= new EventLoopLag().start();
  return shared;
}

// When a run really started and ended, on its node's clock: the master notices a state change up
// to a heartbeat late, so its own clock would make a 6 s run look like 2 s, or a 0.4 s crawl start
// and end at the same instant. Pure: no I/O.

/** What a node tells about one job's times: spiderplane's exact epochs and/or Scrapyd's strings. */
export interface NodeJobTimes {
  start_timestamp?: number | null;
  end_timestamp?: number | null;
  start_time?: string | null;
  end_time?: string | null;
}

/** The master's own bounds for the run: nothing can start before it was created or end after now. */
export interface ObservedWindow {
  createdAt: number;
  now: number;
}

/** A Scrapyd time string is naive local time of the node; this far off ours means another timezone. */
const NAIVE_TOLERANCE_MS = 5 * 60_000;

/** "YYYY-MM-DD HH:MM:SS[.ffffff]" read as local time (Scrapyd prints the node's local time) -> epoch ms. */
export function parseScrapydLocalTime(s: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/.exec(s);
  if (!m) return null;
  const [, y, mo, d, h, mi, se, frac] = m;
  const ms = new Date(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(se)).getTime();
  return Number.isNaN(ms) ? null : ms + (frac ? Number(frac.padEnd(6, '0')) / 1000 : 0);
}

const exact = (x: number | null | undefined): number | null => (typeof x === 'number' && Number.isFinite(x) && x > 0 ? x * 1000 : null);
const naive = (x: string | null | undefined): number | null => (typeof x === 'string' ? parseScrapydLocalTime(x) : null);

/**
 * Epoch ms of the job's start and end, from the node's report. Exact timestamps are taken as they
 * are. Scrapyd's naive strings are trusted when they fall inside the window the master saw (same
 * timezone); otherwise only their difference is kept, anchored at the master's `now` for the end,
 * so the duration stays right across timezones. Start is rounded down and end up, so the duration
 * is never shorter than the node's. Null where the node said nothing usable.
 */
export function nodeJobTimes(t: NodeJobTimes, w: ObservedWindow): { started: number | null; ended: number | null } {
  let started = exact(t.start_timestamp);
  let ended = exact(t.end_timestamp);
  if (started === null || (ended === null && t.end_time)) {
    const s = naive(t.start_time);
    const e = naive(t.end_time);
    const inWindow = (x: number) => x >= w.createdAt - NAIVE_TOLERANCE_MS && x <= w.now + NAIVE_TOLERANCE_MS;
    if (s !== null && e !== null && !(inWindow(s) && inWindow(e))) {
      // Another timezone: keep the node's duration, end it when the master saw it end.
      started ??= w.now - (e - s);
      ended ??= w.now;
    } else {
      if (started === null && s !== null && inWindow(s)) started = s;
      if (ended === null && e !== null && inWindow(e)) ended = e;
    }
  }
  return {
    started: started === null ? null : Math.floor(started),
    ended: ended === null ? null : Math.ceil(ended),
  };
}

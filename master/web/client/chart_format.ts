// What the charts say besides their lines: colours that mean something, rates people can read, and
// why a chart is empty. Pure (no DOM), so it is tested in Node.

/** A series' colour by its meaning: failures red, successes green, the rest neutral. */
export function colorFor(label: string, index: number): string {
  const l = label.toLowerCase();
  if (/fail|error|lost/.test(l)) return '#dc2626';
  if (/finish|succeed|ok\b/.test(l)) return '#16a34a';
  if (/running/.test(l)) return '#1d4ed8';
  return ['#1d4ed8', '#7c3aed', '#d97706', '#0891b2', '#db2777'][index % 5]!;
}

/** Bytes per second in the unit that fits: 512 B/s, 12.5 KB/s, 3.2 MB/s, 1.1 GB/s. */
export function formatRate(bps: number | null | undefined): string {
  if (bps === null || bps === undefined || !Number.isFinite(bps)) return '—';
  const units = ['B/s', 'KB/s', 'MB/s', 'GB/s', 'TB/s'];
  let v = Math.abs(bps);
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  const n = i === 0 || v >= 100 ? Math.round(v).toString() : v >= 10 ? v.toFixed(1).replace(/\.0$/, '') : v.toFixed(2).replace(/\.?0+$/, '');
  return `${bps < 0 ? '-' : ''}${n} ${units[i]}`;
}

/** A count without a useless fraction (axis ticks of 0.5 jobs are noise). */
export function formatCount(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '';
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function every(seconds: number): string {
  if (seconds >= 3600 && seconds % 3600 === 0) return seconds === 3600 ? 'hour' : `${seconds / 3600} hours`;
  if (seconds >= 60 && seconds % 60 === 0) return seconds === 60 ? 'minute' : `${seconds / 60} minutes`;
  return `${Math.round(seconds * 10) / 10} s`;
}

export interface ChartFrame { from: number; to: number; step_seconds: number; sample_every_seconds?: number }

/**
 * Why a chart has nothing to draw, in words. `kind` is node or cluster; `hasPoints` tells an
 * empty range apart from points whose figure is missing (a node without the metrics extension).
 */
export function emptyReason(kind: 'node' | 'cluster', frame: ChartFrame, hasPoints: boolean): string {
  const report = frame.sample_every_seconds ? ` (nodes report every ${every(frame.sample_every_seconds)})` : '';
  if (hasPoints) {
    return kind === 'node'
      ? 'This node sends no such figure: a plain Scrapyd node has no metrics, only a spiderplane slave reports them.'
      : 'No node sent this figure in this range.';
  }
  if (frame.step_seconds > 0) {
    return `No samples yet — this range shows one point per ${every(frame.step_seconds)}; the first appears when a full ${every(frame.step_seconds)} of reports is in${report}.`;
  }
  return `No samples yet — the node reports every ${every(frame.sample_every_seconds ?? 5)}; a node that is offline sends none.`;
}

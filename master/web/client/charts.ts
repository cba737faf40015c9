import uPlot from 'uplot';
import { apiJson } from './api.ts';
import { colorFor, emptyReason, formatCount, formatRate, type ChartFrame } from './chart_format.ts';

type Series = Array<{ label: string; values: Array<number | null> }>;
type Unit = 'percent' | 'rate' | 'count';
interface NodePoint { t: number; cpu: number | null; mem: number | null; disk: number | null; rx: number | null; tx: number | null; running: number | null }
interface ClusterPoint { t: number; cpu: number | null; mem: number | null; running: number | null; finished: number; failed: number; items: number }
type Answer<P> = ChartFrame & { points: P[] };

const RANGE_MS: Record<string, number> = { '1h': 3600_000, '24h': 86400_000, '7d': 7 * 86400_000, '30d': 30 * 86400_000 };

function format(unit: Unit, v: number | null | undefined): string {
  if (unit === 'rate') return formatRate(v);
  if (unit === 'percent') return v === null || v === undefined ? '' : `${Math.round(v)}%`;
  return formatCount(v);
}

function markWindow(u: uPlot, target: HTMLElement): void {
  const x = u.scales.x;
  if (x?.min === undefined || x.max === undefined) return;
  target.dataset.xMin = String(x.min);
  target.dataset.xMax = String(x.max);
}

/**
 * One chart over the whole requested window: the x axis is [from, to] (seconds, as uPlot wants), so
 * a single point sits at its time instead of being stretched over years; an empty chart says why.
 */
function chart(target: HTMLElement, series: Series, times: number[], frame: ChartFrame, kind: 'node' | 'cluster', unit: Unit): void {
  target.replaceChildren();
  const hasValues = series.some((s) => s.values.some((v) => v !== null && v !== undefined));
  if (!times.length || !hasValues) {
    const note = document.createElement('div');
    note.className = 'chart-empty';
    note.setAttribute('data-chart-empty', '');
    note.textContent = emptyReason(kind, frame, times.length > 0);
    target.append(note);
    return;
  }
  const sparse = times.length < 3;
  const opts: uPlot.Options = {
    width: Math.max(240, target.clientWidth), height: 190,
    scales: {
      x: { time: true, range: () => [frame.from / 1000, frame.to / 1000] },
      y: unit === 'percent' ? { range: [0, 100] } : { range: (_u, _min, max) => [0, Math.max(unit === 'count' ? 1 : 1024, max * 1.1)] },
    },
    axes: [
      { stroke: '#6b7280', grid: { stroke: '#eef0f4' } },
      { stroke: '#6b7280', grid: { stroke: '#eef0f4' }, size: unit === 'rate' ? 74 : 48, values: (_u, splits) => splits.map((v) => format(unit, v)) },
    ],
    // The drawn x window, on the element: what a test (or a curious user) can check.
    hooks: { setScale: [(u, key) => { if (key === 'x') markWindow(u, target); }], ready: [(u) => markWindow(u, target)] },
    series: [{}, ...series.map((s, i) => ({
      label: s.label, stroke: colorFor(s.label, i), width: 1.5, spanGaps: true,
      ...(sparse ? { points: { show: true, size: 6 } } : {}), value: (_u: uPlot, v: number | null) => format(unit, v),
    }))],
  };
  new uPlot(opts, [times, ...series.map((s) => s.values)] as uPlot.AlignedData, target);
}

/** Charts that redraw for the range chosen in a [data-range] select, and every 30 s. */
function rangeCharts(box: HTMLElement, draw: (range: string) => Promise<void>): void {
  const select = box.querySelector<HTMLSelectElement>('[data-range]');
  const run = () => void draw(select?.value ?? '1h').catch((e: Error) => { box.querySelector('.chart')!.textContent = `Charts unavailable: ${e.message}`; });
  select?.addEventListener('change', run);
  run();
  window.setInterval(() => { if (!document.hidden) run(); }, 30_000);
}

/** The window of an answer; an older master without from/to gets the range ending now. */
function frameOf<P>(a: Answer<P>, range: string): ChartFrame {
  const to = typeof a.to === 'number' ? a.to : Date.now();
  return { from: typeof a.from === 'number' ? a.from : to - (RANGE_MS[range] ?? 3600_000), to, step_seconds: a.step_seconds ?? 0, sample_every_seconds: a.sample_every_seconds };
}

/** A node page's charts: CPU, memory, disk, network and running jobs from the master's metric history. */
export function nodeCharts(): void {
  const box = document.querySelector<HTMLElement>('[data-node-charts]');
  if (!box) return;
  const slot = (k: string) => box.querySelector<HTMLElement>(`[data-chart="${k}"]`)!;
  rangeCharts(box, async (range) => {
    const answer = await apiJson<Answer<NodePoint>>('GET', `/api/nodes/${encodeURIComponent(box.dataset.nodeCharts!)}/metrics?range=${range}`);
    const frame = frameOf(answer, range);
    const points = answer.points;
    const t = points.map((p) => p.t / 1000);
    chart(slot('cpu'), [{ label: 'CPU %', values: points.map((p) => p.cpu) }, { label: 'Memory %', values: points.map((p) => p.mem) }], t, frame, 'node', 'percent');
    chart(slot('disk'), [{ label: 'fullest disk %', values: points.map((p) => p.disk) }], t, frame, 'node', 'percent');
    chart(slot('net'), [{ label: 'received', values: points.map((p) => p.rx) }, { label: 'sent', values: points.map((p) => p.tx) }], t, frame, 'node', 'rate');
    chart(slot('jobs'), [{ label: 'running', values: points.map((p) => p.running) }], t, frame, 'node', 'count');
  });
}

/** The dashboard's cluster charts: average CPU and memory, and jobs finished and failed. */
export function clusterCharts(): void {
  const box = document.querySelector<HTMLElement>('[data-cluster-charts]');
  if (!box) return;
  const slot = (k: string) => box.querySelector<HTMLElement>(`[data-chart="${k}"]`)!;
  rangeCharts(box, async (range) => {
    const answer = await apiJson<Answer<ClusterPoint>>('GET', `/api/metrics/cluster?range=${range}`);
    const frame = frameOf(answer, range);
    const points = answer.points;
    const t = points.map((p) => p.t / 1000);
    chart(slot('cluster-cpu'), [{ label: 'CPU %', values: points.map((p) => p.cpu) }, { label: 'Memory %', values: points.map((p) => p.mem) }], t, frame, 'cluster', 'percent');
    chart(slot('cluster-jobs'), [{ label: 'finished', values: points.map((p) => p.finished) }, { label: 'failed', values: points.map((p) => p.failed) }, { label: 'running', values: points.map((p) => p.running) }], t, frame, 'cluster', 'count');
  });
}

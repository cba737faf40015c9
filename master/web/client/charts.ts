import uPlot from 'uplot';
import { apiJson } from './api.ts';

type Series = Array<{ label: string; values: Array<number | null> }>;
interface NodePoint { t: number; cpu: number | null; mem: number | null; disk: number | null; rx: number | null; tx: number | null; running: number | null }
interface ClusterPoint { t: number; cpu: number | null; mem: number | null; running: number | null; finished: number; failed: number; items: number }

const COLORS = ['#1d4ed8', '#16a34a', '#d97706', '#dc2626', '#7c3aed', '#0891b2'];

function chart(target: HTMLElement, series: Series, times: number[], yRange?: [number, number]): void {
  target.replaceChildren();
  if (!times.length) {
    target.textContent = 'No data for this range yet.';
    return;
  }
  const opts: uPlot.Options = {
    width: Math.max(280, target.clientWidth), height: 190,
    scales: { x: { time: true }, y: yRange ? { range: yRange } : {} },
    axes: [{ stroke: '#6b7280', grid: { stroke: '#eef0f4' } }, { stroke: '#6b7280', grid: { stroke: '#eef0f4' }, size: 56 }],
    series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true }))],
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

/** A node page's charts: CPU, memory, disk, network and running jobs from the master's metric history. */
export function nodeCharts(): void {
  const box = document.querySelector<HTMLElement>('[data-node-charts]');
  if (!box) return;
  const slot = (k: string) => box.querySelector<HTMLElement>(`[data-chart="${k}"]`)!;
  rangeCharts(box, async (range) => {
    const { points } = await apiJson<{ points: NodePoint[] }>('GET', `/api/nodes/${encodeURIComponent(box.dataset.nodeCharts!)}/metrics?range=${range}`);
    const t = points.map((p) => p.t / 1000);
    chart(slot('cpu'), [{ label: 'CPU %', values: points.map((p) => p.cpu) }, { label: 'Memory %', values: points.map((p) => p.mem) }], t, [0, 100]);
    chart(slot('disk'), [{ label: 'fullest disk %', values: points.map((p) => p.disk) }], t, [0, 100]);
    chart(slot('net'), [{ label: 'received', values: points.map((p) => p.rx) }, { label: 'sent', values: points.map((p) => p.tx) }], t);
    chart(slot('jobs'), [{ label: 'running', values: points.map((p) => p.running) }], t);
  });
}

/** The dashboard's cluster charts: average CPU and memory, and jobs finished and failed. */
export function clusterCharts(): void {
  const box = document.querySelector<HTMLElement>('[data-cluster-charts]');
  if (!box) return;
  const slot = (k: string) => box.querySelector<HTMLElement>(`[data-chart="${k}"]`)!;
  rangeCharts(box, async (range) => {
    const { points } = await apiJson<{ points: ClusterPoint[] }>('GET', `/api/metrics/cluster?range=${range}`);
    const t = points.map((p) => p.t / 1000);
    chart(slot('cluster-cpu'), [{ label: 'CPU %', values: points.map((p) => p.cpu) }, { label: 'Memory %', values: points.map((p) => p.mem) }], t, [0, 100]);
    chart(slot('cluster-jobs'), [{ label: 'finished', values: points.map((p) => p.finished) }, { label: 'failed', values: points.map((p) => p.failed) }, { label: 'running', values: points.map((p) => p.running) }], t);
  });
}

import uPlot from 'uplot';
import { apiJson } from './api.ts';

interface Sample { time: number; cpu_percent: number | null; mem_percent: number | null; disk: string | null; rx_bps: number | null; tx_bps: number | null; running: number; pending: number }

const COLORS = ['#1d4ed8', '#16a34a', '#d97706', '#dc2626', '#7c3aed', '#0891b2'];

function chart(target: HTMLElement, series: Array<{ label: string; values: Array<number | null> }>, times: number[], yRange?: [number, number]): void {
  target.replaceChildren();
  const width = Math.max(280, target.clientWidth);
  const opts: uPlot.Options = {
    width, height: 190,
    scales: { x: { time: true }, y: yRange ? { range: yRange } : {} },
    axes: [{ stroke: '#6b7280', grid: { stroke: '#eef0f4' } }, { stroke: '#6b7280', grid: { stroke: '#eef0f4' }, size: 56 }],
    series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true }))],
    legend: { show: true },
  };
  new uPlot(opts, [times, ...series.map((s) => s.values)] as uPlot.AlignedData, target);
}

/** A node page's charts: CPU, memory, disk, network and jobs over the last hour of heartbeats. */
export function nodeCharts(): void {
  const box = document.querySelector<HTMLElement>('[data-node-charts]');
  if (!box) return;
  const name = box.dataset.nodeCharts!;
  const draw = async () => {
    const since = Date.now() - 3600_000;
    const { metrics } = await apiJson<{ metrics: Sample[] }>('GET', `/api/nodes/${encodeURIComponent(name)}?since=${since}`);
    const times = metrics.map((m) => m.time / 1000);
    const slot = (k: string) => box.querySelector<HTMLElement>(`[data-chart="${k}"]`)!;
    if (!metrics.length) {
      for (const k of ['cpu', 'disk', 'net', 'jobs']) slot(k).textContent = 'No heartbeats in the last hour.';
      return;
    }
    chart(slot('cpu'), [{ label: 'CPU %', values: metrics.map((m) => m.cpu_percent) }, { label: 'Memory %', values: metrics.map((m) => m.mem_percent) }], times, [0, 100]);
    const mounts = new Set<string>();
    const disks = metrics.map((m) => {
      const list = m.disk ? (JSON.parse(m.disk) as Array<{ mount: string; used_percent: number }>) : [];
      for (const d of list) mounts.add(d.mount);
      return new Map(list.map((d) => [d.mount, d.used_percent]));
    });
    chart(slot('disk'), [...mounts].slice(0, 6).map((mount) => ({ label: mount, values: disks.map((d) => d.get(mount) ?? null) })), times, [0, 100]);
    chart(slot('net'), [{ label: 'received', values: metrics.map((m) => m.rx_bps) }, { label: 'sent', values: metrics.map((m) => m.tx_bps) }], times);
    chart(slot('jobs'), [{ label: 'running', values: metrics.map((m) => m.running) }, { label: 'pending', values: metrics.map((m) => m.pending) }], times);
  };
  void draw().catch((e: Error) => { box.textContent = `Charts unavailable: ${e.message}`; });
  window.setInterval(() => { if (!document.hidden) void draw().catch(() => undefined); }, 30_000);
}

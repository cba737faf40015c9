import { readFile, statfs } from 'node:fs/promises';
import { cpus, freemem, loadavg, totalmem, uptime } from 'node:os';
import type { DiskUsage, NodeMetrics } from '../../common/types.ts';
import { cpuPercent, diskUsage, parseCpuTimes, parseMeminfo, parseMounts, parseNetDev, type CpuTimes } from './proc_readers.ts';

type HostMetrics = Omit<NodeMetrics, 'running' | 'pending' | 'max_proc'>;

const text = (path: string) => readFile(path, 'utf8').catch(() => null);

/**
 * Samples host metrics on a timer, never inside a request, by reading /proc/stat, /proc/meminfo,
 * /proc/net/dev and /proc/self/mounts and calling statfs: no child process is ever spawned. CPU
 * and network figures are rates between two samples (null until the second).
 */
export class SystemMetrics {
  private latest: HostMetrics;
  private timer: NodeJS.Timeout | null = null;
  private readonly startedAt = Date.now();
  private sampling: Promise<void> | null = null;
  private prevCpu: CpuTimes | null = null;
  private prevNet: { rx: number; tx: number; at: number } | null = null;

  constructor(private readonly intervalMs: number) {
    this.latest = {
      time: Date.now() / 1000, cpu_percent: null, cpu_count: cpus().length, load: loadavg() as [number, number, number],
      memory: { total_bytes: 0, used_bytes: 0, available_bytes: 0, used_percent: 0 }, disks: [],
      network: { rx_bytes_per_sec: null, tx_bytes_per_sec: null }, uptime_seconds: uptime(), daemon_uptime_seconds: 0,
    };
  }

  async start(): Promise<void> {
    await this.sample();
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  current(): HostMetrics {
    return { ...this.latest, load: loadavg() as [number, number, number], uptime_seconds: uptime(), daemon_uptime_seconds: (Date.now() - this.startedAt) / 1000 };
  }

  private sample(): Promise<void> {
    this.sampling ??= this.read().finally(() => { this.sampling = null; });
    return this.sampling;
  }

  private async read(): Promise<void> {
    const [stat, meminfo, netdev, mounts] = await Promise.all([text('/proc/stat'), text('/proc/meminfo'), text('/proc/net/dev'), text('/proc/self/mounts')]);
    const at = Date.now();
    const cpu = stat === null ? null : parseCpuTimes(stat);
    const busy = cpu && this.prevCpu ? cpuPercent(this.prevCpu, cpu) : null;
    if (cpu) this.prevCpu = cpu;
    const mem = (meminfo === null ? null : parseMeminfo(meminfo)) ?? { total: totalmem(), available: freemem() };
    const net = netdev === null ? null : parseNetDev(netdev);
    let network: HostMetrics['network'] = { rx_bytes_per_sec: null, tx_bytes_per_sec: null };
    if (net && this.prevNet && at > this.prevNet.at) {
      const secs = (at - this.prevNet.at) / 1000;
      network = { rx_bytes_per_sec: round(Math.max(0, net.rx - this.prevNet.rx) / secs), tx_bytes_per_sec: round(Math.max(0, net.tx - this.prevNet.tx) / secs) };
    }
    if (net) this.prevNet = { ...net, at };
    const disks: DiskUsage[] = [];
    for (const m of mounts === null ? [] : parseMounts(mounts)) {
      const s = await statfs(m.mount).catch(() => null);
      const u = s ? diskUsage(s) : null;
      if (u) disks.push({ mount: m.mount, size_bytes: u.size, used_bytes: u.used, used_percent: round(u.percent) });
    }
    this.latest = {
      ...this.latest,
      time: at / 1000,
      cpu_percent: busy === null ? this.latest.cpu_percent : round(busy),
      memory: { total_bytes: mem.total, used_bytes: mem.total - mem.available, available_bytes: mem.available, used_percent: round(((mem.total - mem.available) / mem.total) * 100) },
      disks,
      network,
    };
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

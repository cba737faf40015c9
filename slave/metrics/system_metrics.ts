import si from 'systeminformation';
import { cpus, loadavg, uptime } from 'node:os';
import type { DiskUsage, NodeMetrics } from '../../common/types.ts';

type HostMetrics = Omit<NodeMetrics, 'running' | 'pending' | 'max_proc'>;

// Pseudo and container file systems say nothing about room for logs and items.
const IGNORED_FS = /^(tmpfs|devtmpfs|overlay|squashfs|proc|sysfs|cgroup2?|nsfs|ramfs|autofs|fuse\..*)$/;

/**
 * Samples host metrics on a timer, never inside a request: systeminformation's first CPU reading
 * is stale and network rates need two readings a second or more apart.
 */
export class SystemMetrics {
  private latest: HostMetrics;
  private timer: NodeJS.Timeout | null = null;
  private readonly startedAt = Date.now();
  private sampling: Promise<void> | null = null;

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
    const [load, mem, fs, net] = await Promise.all([
      si.currentLoad().catch(() => null),
      si.mem().catch(() => null),
      si.fsSize().catch(() => []),
      si.networkStats('*').catch(() => []),
    ]);
    const disks: DiskUsage[] = fs
      .filter((d) => !IGNORED_FS.test(d.type) && d.size > 0)
      .map((d) => ({ mount: d.mount, size_bytes: d.size, used_bytes: d.used, used_percent: round(d.use) }));
    const external = net.filter((n) => n.iface !== 'lo');
    const sum = (k: 'rx_sec' | 'tx_sec') => {
      const vals = external.map((n) => n[k]).filter((x): x is number => typeof x === 'number' && x >= 0);
      return vals.length ? round(vals.reduce((a, b) => a + b, 0)) : null;
    };
    this.latest = {
      ...this.latest,
      time: Date.now() / 1000,
      cpu_percent: load ? round(load.currentLoad) : null,
      memory: mem
        ? { total_bytes: mem.total, used_bytes: mem.total - mem.available, available_bytes: mem.available, used_percent: round(((mem.total - mem.available) / mem.total) * 100) }
        : this.latest.memory,
      disks,
      network: { rx_bytes_per_sec: sum('rx_sec'), tx_bytes_per_sec: sum('tx_sec') },
    };
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

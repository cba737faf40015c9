// Pure parsers for the Linux files the slave samples its host metrics from (/proc/stat,
// /proc/meminfo, /proc/net/dev, /proc/self/mounts): no child process, no I/O here.

export interface CpuTimes { idle: number; total: number }

/** The aggregate "cpu" line of /proc/stat: idle (idle + iowait) and total jiffies. */
export function parseCpuTimes(stat: string): CpuTimes | null {
  const line = stat.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return null;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  if (f.length < 4 || f.some((x) => !Number.isFinite(x))) return null;
  // user nice system idle iowait irq softirq steal (guest and guest_nice are inside user and nice)
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  return { idle: idle + iowait, total: user + nice + system + idle + iowait + irq + softirq + steal };
}

/** Busy share of the CPU between two readings, in percent (null when no time passed). */
export function cpuPercent(prev: CpuTimes, cur: CpuTimes): number | null {
  const total = cur.total - prev.total;
  if (total <= 0) return null;
  return Math.min(100, Math.max(0, ((total - (cur.idle - prev.idle)) / total) * 100));
}

/** MemTotal and MemAvailable of /proc/meminfo, in bytes. */
export function parseMeminfo(text: string): { total: number; available: number } | null {
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+)\\s*kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : null;
  };
  const total = kb('MemTotal');
  const available = kb('MemAvailable') ?? (kb('MemFree') !== null ? kb('MemFree')! + (kb('Buffers') ?? 0) + (kb('Cached') ?? 0) : null);
  return total === null || available === null ? null : { total, available };
}

/** Received and sent bytes summed over every interface but loopback, from /proc/net/dev. */
export function parseNetDev(text: string): { rx: number; tx: number } | null {
  let rx = 0;
  let tx = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const iface = line.slice(0, colon).trim();
    if (iface === 'lo' || iface === '') continue;
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (f.length < 9 || !Number.isFinite(f[0]) || !Number.isFinite(f[8])) continue;
    rx += f[0]!;
    tx += f[8]!;
    seen = true;
  }
  return seen ? { rx, tx } : null;
}

export interface Mount { device: string; mount: string; type: string }

// Pseudo and container file systems say nothing about room for logs and items.
export const IGNORED_FS = /^(tmpfs|devtmpfs|overlay|squashfs|proc|sysfs|cgroup2?|nsfs|ramfs|autofs|fuse\..*|devpts|mqueue|hugetlbfs|debugfs|tracefs|securityfs|pstore|bpf|configfs|fusectl|binfmt_misc|efivarfs|rpc_pipefs|nfsd|selinuxfs|rootfs)$/;

/** The real file systems of /proc/self/mounts, one mount point per device (the first listed). */
export function parseMounts(text: string): Mount[] {
  const out: Mount[] = [];
  const devices = new Set<string>();
  for (const line of text.split('\n')) {
    const [device, mount, type] = line.split(' ');
    if (!device || !mount || !type || IGNORED_FS.test(type)) continue;
    if (devices.has(device)) continue;
    devices.add(device);
    // Octal escapes (\040 = space) as the kernel writes them.
    out.push({ device, mount: mount.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))), type });
  }
  return out;
}

/** Size, used bytes and df's Use% (used over used + available to non-root) from statfs fields. */
export function diskUsage(s: { bsize: number; blocks: number; bfree: number; bavail: number }): { size: number; used: number; percent: number } | null {
  const size = s.blocks * s.bsize;
  if (size <= 0) return null;
  const used = (s.blocks - s.bfree) * s.bsize;
  const avail = s.bavail * s.bsize;
  return { size, used, percent: used + avail > 0 ? (used / (used + avail)) * 100 : 0 };
}

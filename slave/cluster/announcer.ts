/**
 * Tells a master this slave exists (name, URL, capacity) and keeps telling it, so a master that
 * restarted or lost its database learns about the slave again within one interval. Failures are
 * logged when they start and when they end, not on every attempt.
 */
export class Announcer {
  private timer: NodeJS.Timeout | null = null;
  private failing: string | null = null;

  constructor(
    private readonly masterUrl: string,
    private readonly token: string | null,
    private readonly payload: () => { name: string; url: string; max_proc: number; labels?: Record<string, string> },
    private readonly intervalMs = 10_000,
    /** called on every answered announce: the master is there (it counts as contact for the lease) */
    private readonly onAnswered: () => void = () => undefined,
  ) {}

  start(): void {
    void this.announce();
    this.timer = setInterval(() => void this.announce(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  async announce(): Promise<boolean> {
    try {
      const res = await fetch(this.masterUrl.replace(/\/+$/, '') + '/api/cluster/announce', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}) },
        body: JSON.stringify(this.payload()),
        signal: AbortSignal.timeout(10_000),
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
      this.onAnswered();
      if (this.failing !== null) console.log(`[spiderplane-slave] announced to ${this.masterUrl} again`);
      this.failing = null;
      return true;
    } catch (e) {
      const why = (e as Error & { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
      if (this.failing !== why) console.error(`[spiderplane-slave] cannot announce to master ${this.masterUrl}: ${why}`);
      this.failing = why;
      return false;
    }
  }
}

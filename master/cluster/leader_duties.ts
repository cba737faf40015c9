/**
 * The work only the leader does — heartbeats and verdicts, cron, retries, failover, service
 * reconciliation, alert evaluation and mail, pruning — started when this master is elected and
 * stopped when it is deposed. Transitions run one at a time, in order: a quick elect-depose-elect
 * never leaves two copies of a loop running, nor one half started.
 */
export interface Duty {
  name: string;
  start(): void | Promise<void>;
  stop(): void | Promise<void>;
}

export class LeaderDuties {
  private chain: Promise<void> = Promise.resolve();
  private running = false;

  constructor(private readonly duties: readonly Duty[]) {}

  get active(): boolean { return this.running; }

  /** Starts every duty, in order (the first ones reconcile what the next ones rely on). */
  lead(): Promise<void> {
    return this.enqueue(async () => {
      if (this.running) return;
      this.running = true;
      for (const d of this.duties) {
        try {
          await d.start();
        } catch (e) {
          console.error(`[spiderplane-master] starting ${d.name} as the leader failed:`, e);
        }
      }
    });
  }

  /** Stops every duty, in reverse order. */
  follow(): Promise<void> {
    return this.enqueue(async () => {
      if (!this.running) return;
      this.running = false;
      for (const d of [...this.duties].reverse()) {
        try {
          await d.stop();
        } catch (e) {
          console.error(`[spiderplane-master] stopping ${d.name} failed:`, e);
        }
      }
    });
  }

  /** Settles once every queued transition has run. */
  settled(): Promise<void> { return this.chain; }

  private enqueue(step: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(step, step);
    return this.chain;
  }
}

import { ifLeader, unfenced, type Fence } from '../cluster/fence.ts';
import type { Cron } from 'croner';
import type { Dispatcher, Target } from '../runs/dispatcher.ts';
import type { RunRow, RunStore } from '../runs/run_store.ts';
import { parseCron } from './cron.ts';
import { parseStoredPolicy } from '../runs/run_policy.ts';
import type { ScheduleRow, ScheduleStore } from './schedule_store.ts';

const MAX_TIMER_MS = 30_000;
const SYNC_MS = 2_000;
const MAX_MISSED_RECORDED = 100;

/**
 * Fires schedules at their cron occurrences (croner computes them; this class owns the timers so
 * it always knows the exact occurrence being fired). Every occurrence is claimed in the database before
 * anything is dispatched (one conditional UPDATE), so neither a master restart nor another master
 * can fire one twice; occurrences that fell
 * while the master was down are recorded as missed and handled by the schedule's policy.
 */
export class Scheduler {
  private readonly timers = new Map<number, NodeJS.Timeout>();
  /** updated_at of each schedule as last armed: an edit made through another master shows as a change. */
  private readonly armedVersion = new Map<number, number>();
  private syncTimer: NodeJS.Timeout | null = null;
  /** Until start() (on a standby: until it is elected) nothing is armed, so an edit's reload() is a no-op. */
  private stopped = true;
  /** Claiming an occurrence is the leader's write (master/cluster/fence.ts). */
  fence: Fence = unfenced;

  constructor(
    private readonly store: ScheduleStore,
    private readonly runs: RunStore,
    private readonly dispatcher: Dispatcher,
  ) {}

  async start(): Promise<void> {
    this.stopped = false;
    for (const s of await this.store.all()) if (s.enabled) await this.catchUp(s);
    for (const s of await this.store.all()) await this.arm(s.id);
    // Schedules created or edited through another master (several share one database) are armed
    // here within SYNC_MS; this master's own API calls reload() at once.
    this.syncTimer = setInterval(() => { this.sync().catch((e) => { if (!this.stopped) console.error('[spiderplane-master] schedules:', e); }); }, SYNC_MS);
    this.syncTimer.unref();
  }

  private async sync(): Promise<void> {
    for (const s of await this.store.all()) {
      if (this.stopped) return;
      if (s.enabled && (!this.timers.has(s.id) || this.armedVersion.get(s.id) !== s.updated_at)) await this.reload(s.id);
    }
  }

  /** How many schedules have a timer (none on a standby). */
  get armed(): number { return this.timers.size; }

  stop(): void {
    this.stopped = true;
    if (this.syncTimer) clearInterval(this.syncTimer);
    this.syncTimer = null;
    this.armedVersion.clear();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  /** Call after a schedule was created, edited, enabled, disabled or deleted. */
  async reload(id: number): Promise<void> {
    const t = this.timers.get(id);
    if (t) clearTimeout(t);
    this.timers.delete(id);
    await this.arm(id);
  }

  nextOccurrences(s: ScheduleRow, n: number): Date[] {
    return parseCron(s.cron, s.timezone).nextRuns(n, new Date());
  }

  /** Where counting occurrences starts: the last handled one, but never before the last edit. */
  private baseline(s: ScheduleRow): number {
    return Math.max(s.last_fire_at ?? 0, s.updated_at);
  }

  private due(cron: Cron, from: number, now: number): number[] {
    const out: number[] = [];
    let t = cron.nextRun(new Date(from));
    while (t && t.getTime() <= now && out.length < 100_000) {
      out.push(t.getTime());
      t = cron.nextRun(t);
    }
    return out;
  }

  private async catchUp(s: ScheduleRow): Promise<void> {
    // An occurrence claimed but never recorded: the master stopped between the claim and the record.
    if (s.last_fire_at !== null && !(await this.store.hasFire(s.id, s.last_fire_at))) {
      const started = await this.runs.ofScheduleSince(s.id, s.last_fire_at);
      if (started.length) {
        await this.leaderWrite(() => this.store.recordFire(s.id, s.last_fire_at!, 'dispatched', `${started.map((r) => `${r.job}@${r.node}`).join(', ')} (recorded after a master restart)`));
      } else if (s.missed === 'run_once') {
        if (!(await this.leaderWrite(async () => true))) return; // still the leader before dispatching on its behalf
        try {
          const runs = await this.dispatchFor(s, 'schedule');
          await this.store.recordFire(s.id, s.last_fire_at, 'missed-run', `the master stopped while firing it; run at restart: ${runs.map((r) => `${r.job}@${r.node}`).join(', ')}`);
        } catch (e) {
          await this.store.recordFire(s.id, s.last_fire_at, 'failed', (e as Error).message);
        }
      } else {
        await this.leaderWrite(() => this.store.recordFire(s.id, s.last_fire_at!, 'missed', 'the master stopped while firing it'));
      }
    }
    const missed = this.due(parseCron(s.cron, s.timezone), this.baseline(s), Date.now());
    if (!missed.length) return;
    const last = missed[missed.length - 1]!;
    const runOnce = s.missed === 'run_once';
    const recorded = runOnce ? missed.slice(0, -1) : missed;
    await this.leaderWrite(async () => {
      for (const t of recorded.slice(-MAX_MISSED_RECORDED)) await this.store.recordFire(s.id, t, 'missed', 'the master was not running');
      if (recorded.length > MAX_MISSED_RECORDED) await this.store.recordFire(s.id, recorded[0]!, 'missed', `${recorded.length - MAX_MISSED_RECORDED} earlier occurrences also missed`);
    });
    if (runOnce) await this.fire(s.id, last, 'missed-run');
    else await this.leaderWrite(() => this.store.claim(s.id, last));
  }

  private async arm(id: number): Promise<void> {
    if (this.stopped) return;
    const s = await this.store.get(id);
    if (this.stopped) return;
    if (!s || !s.enabled) return;
    this.armedVersion.set(id, s.updated_at);
    let cron: Cron;
    try {
      cron = parseCron(s.cron, s.timezone);
    } catch {
      return; // validated on input; an expression croner no longer accepts just does not fire
    }
    const next = cron.nextRun(new Date(Math.max(this.baseline(s), Date.now() - 1000)));
    if (!next) return;
    const timer = setTimeout(() => { this.wake(id).catch((e) => {
      if (this.stopped) return; // the database closed under a wake at shutdown
      console.error(`[spiderplane-master] schedule ${id}:`, e);
      void this.arm(id).catch(() => undefined);
    }); }, Math.max(0, Math.min(next.getTime() - Date.now(), MAX_TIMER_MS)));
    // Another arm of this schedule (a reload during the read above) may have set a timer: keep one.
    const other = this.timers.get(id);
    if (other) clearTimeout(other);
    this.timers.set(id, timer);
  }

  private async wake(id: number): Promise<void> {
    this.timers.delete(id);
    const s = await this.store.get(id);
    if (!s || !s.enabled || this.stopped) return;
    const due = this.due(parseCron(s.cron, s.timezone), this.baseline(s), Date.now());
    if (due.length) {
      // Normally exactly one; more only if the process stalled past several occurrences.
      await this.leaderWrite(async () => {
        for (const t of due.slice(0, -1).slice(-MAX_MISSED_RECORDED)) await this.store.recordFire(id, t, 'missed', 'the master was too busy to fire it in time');
      });
      await this.fire(id, due[due.length - 1]!, 'dispatched');
    }
    await this.arm(id);
  }

  private async fire(id: number, occurrence: number, outcome: 'dispatched' | 'missed-run'): Promise<void> {
    if (!(await this.leaderWrite(() => this.store.claim(id, occurrence)))) return;
    const s = await this.store.get(id);
    if (!s) return; // deleted since the claim
    if (s.overlap === 'skip' && (await this.runs.scheduleHasActive(id))) {
      await this.store.recordFire(id, occurrence, 'skipped-overlap', 'the previous run is still active');
      return;
    }
    try {
      const runs = await this.dispatchFor(s, 'schedule');
      await this.store.recordFire(id, occurrence, outcome, runs.map((r) => `${r.job}@${r.node}${r.state === 'failed' ? ' (failed)' : ''}`).join(', '));
    } catch (e) {
      await this.store.recordFire(id, occurrence, 'failed', (e as Error).message);
    }
  }

  /**
   * Every write about occurrences is the leader's: a deposed leader that has not noticed yet must not
   * record a missed occurrence the new leader records too (the fire history would show it twice).
   */
  private leaderWrite<T>(fn: () => Promise<T>): Promise<T | undefined> {
    return ifLeader(this.fence, fn);
  }

  /** Runs a schedule's spider now, outside its cron rhythm. */
  async runNow(id: number, by: string): Promise<RunRow[]> {
    const s = await this.store.get(id);
    if (!s) throw new Error(`schedule ${id} not found`);
    const runs = await this.dispatchFor(s, by);
    await this.store.recordFire(id, Date.now(), 'manual', `${by}: ${runs.map((r) => `${r.job}@${r.node}`).join(', ')}`);
    return runs;
  }

  private dispatchFor(s: ScheduleRow, by: string): Promise<RunRow[]> {
    return this.dispatcher.dispatch({
      project: s.project, spider: s.spider, version: s.version, args: JSON.parse(s.args) as Record<string, string>,
      settings: JSON.parse(s.settings) as Record<string, string>, priority: s.priority, target: JSON.parse(s.target) as Target,
      scheduleId: s.id, retriesLeft: s.max_retries, createdBy: by, policy: parseStoredPolicy(s.run_policy),
    });
  }
}

import { ifLeader, unfenced, type Fence } from '../cluster/fence.ts';
import { EventEmitter } from 'node:events';
import type { NodeRegistry } from '../nodes/node_registry.ts';
import type { Dispatcher } from './dispatcher.ts';
import { decideRetry, retryDelayMs } from './retry_backoff.ts';
import { policyOfRun } from './run_policy.ts';
import type { RunPolicyStore } from './run_policy_store.ts';
import type { RunRow, RunStore } from './run_store.ts';

const TICK_MS = 1000;
/** A retry that found no node to run on is tried again this much later (within RETRY_WINDOW_MS of the failure). */
const NO_NODE_WAIT_MS = 30_000;
const RETRY_WINDOW_MS = 24 * 3600_000;

/**
 * Retries on failure: a run that ended failed, timeout or memory with a retry left gets a due time
 * (retry_delay doubling, with jitter) stored in the database; one timer picks due retries, claims
 * each in the database, and dispatches it — preferably on another node than the one that failed —
 * linked to the run it repeats (retry_of). A retry due while the master was down runs at the next
 * start. Events: 'planned' (failed RunRow with retry_at), 'retried' (failed RunRow, new RunRow).
 */
export class RetryManager extends EventEmitter {
  private timer: NodeJS.Timeout | null = null;
  private busy = false;

  constructor(
    private readonly runs: RunStore,
    private readonly policies: RunPolicyStore,
    private readonly dispatcher: Dispatcher,
    private readonly nodes: NodeRegistry,
    private readonly random: () => number = Math.random,
  ) {
    super();
  }

  /** Claiming a retry is the leader's write (master/cluster/fence.ts). */
  fence: Fence = unfenced;

  async start(): Promise<void> {
    const released = await this.policies.releaseInterrupted();
    if (released) console.log(`[spiderplane-master] ${released} retry(ies) were being dispatched when the master stopped: taken up again`);
    for (const run of await this.policies.unplanned(Date.now() - RETRY_WINDOW_MS)) await this.onRunEnded(run);
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** A run ended: plans its retry when it failed and has one left. Returns the row as it now stands. */
  async onRunEnded(run: RunRow): Promise<RunRow> {
    const d = decideRetry(run);
    if (d.kind !== 'retry' || run.retry_at !== null) return run;
    const at = Math.round((run.ended_at ?? Date.now()) + retryDelayMs(run.retry_delay, d.number, this.random));
    await this.policies.planRetry(run.id, at);
    const planned = (await this.runs.get(run.id)) ?? { ...run, retry_at: at };
    this.emit('planned', planned);
    return planned;
  }

  /** Dispatches every due retry once (a slow dispatch never overlaps the next tick). */
  async tick(now = Date.now()): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (const run of await this.policies.due(now)) {
        if (!(await ifLeader(this.fence, () => this.policies.claim(run.id, Date.now())))) continue;
        await this.retry(run);
      }
    } catch (e) {
      console.error('[spiderplane-master] retries:', e);
    } finally {
      this.busy = false;
    }
  }

  private async retry(run: RunRow): Promise<void> {
    const version = run.version;
    // Another node than the one that failed, when another one can take it.
    const failedOn = run.node_id === null ? undefined : await this.nodes.byId(run.node_id);
    const others = failedOn && version !== null ? await this.dispatcher.eligible(run.project, version, new Set([failedOn.id])) : [];
    const exclude = failedOn && others.length > 0 ? new Set([failedOn.id]) : undefined;
    try {
      const [next] = await this.dispatcher.dispatch({
        project: run.project, spider: run.spider, version, args: JSON.parse(run.args) as Record<string, string>,
        settings: JSON.parse(run.settings) as Record<string, string>, priority: run.priority, target: { mode: 'auto' },
        scheduleId: run.schedule_id, retriesLeft: run.retries_left, createdBy: 'retry', retryOf: run, excludeNodeIds: exclude,
        policy: policyOfRun(run), retryNumber: run.retry_number + 1,
      });
      if (next) {
        await this.runs.update((await this.runs.get(run.id))!, { note: `${run.note ? `${run.note}; ` : ''}retry ${run.retry_number + 1} of ${run.retries}: ${next.job} on ${next.node}` });
        this.emit('retried', run, next);
      }
    } catch (e) {
      // No node can take it now (all offline, say): try again a little later, within a day of the failure.
      const later = Date.now() + NO_NODE_WAIT_MS;
      const current = (await this.runs.get(run.id))!;
      const base = (run.note ?? '').replace(/;? ?retry not dispatched yet: .*$/, '');
      if (later - (run.ended_at ?? 0) < RETRY_WINDOW_MS) {
        await this.policies.planRetry(run.id, later);
        await this.runs.update(current, { note: `${base ? `${base}; ` : ''}retry not dispatched yet: ${(e as Error).message}` });
      } else {
        await this.runs.update(current, { note: `${base ? `${base}; ` : ''}gave up retrying: ${(e as Error).message}` });
      }
    }
  }
}

import { EventEmitter } from 'node:events';
import type { NodeRegistry, NodeRow } from '../nodes/node_registry.ts';
import type { NodeClient } from '../nodes/node_client.ts';
import type { HeartbeatResult } from '../nodes/heartbeat.ts';
import type { Dispatcher } from './dispatcher.ts';
import type { RunRow, RunStore } from './run_store.ts';
import type { SlaveJob } from '../../common/types.ts';
import { nodeJobTimes, type NodeJobTimes } from './node_times.ts';
import { policyOfRun } from './run_policy.ts';

const DUPLICATE_WINDOW_MS = 7 * 24 * 3600_000;
/** How long a finished job's record on its node may stay incomplete before the master takes it as it is. */
const INCOMPLETE_RECORD_WAIT_MS = 60_000;

/**
 * Keeps the master's runs in step with what nodes report, and fails runs over when their node
 * dies: they are marked lost (never deleted) and re-dispatched to another node within their retry
 * budget. When the dead node comes back still running one of them, that duplicate is cancelled.
 *
 * Events: 'finished' (RunRow), 'lost' (RunRow), 'redispatched' (lost RunRow, new RunRow).
 */
export class RunTracker extends EventEmitter {
  constructor(
    private readonly runs: RunStore,
    private readonly nodes: NodeRegistry,
    private readonly dispatcher: Dispatcher,
    private readonly clientFor: (node: NodeRow) => NodeClient,
  ) {
    super();
  }

  async onHeartbeat({ node, jobs, requestedAt }: HeartbeatResult): Promise<void> {
    const states = new Map<string, 'pending' | 'running' | 'finished'>();
    const listed = new Map<string, NodeJobTimes>();
    for (const j of jobs.finished) { states.set(j.id, 'finished'); listed.set(j.id, j); }
    for (const j of jobs.pending) states.set(j.id, 'pending');
    for (const j of jobs.running) { states.set(j.id, 'running'); listed.set(j.id, j); }
    const now = Date.now();
    /** When the node says the job started (its listjobs start_time), else now. */
    const startedOnNode = (run: RunRow) => nodeJobTimes(listed.get(run.job) ?? {}, { createdAt: run.created_at, now }).started ?? now;
    for (const run of await this.runs.activeOfNode(node.id)) {
      const seen = states.get(run.job);
      if (seen === 'pending') {
        if (run.state !== 'pending') await this.runs.update(run, { state: 'pending' });
      } else if (seen === 'running') {
        if (run.state !== 'running') await this.runs.update(run, { state: 'running', started_at: run.started_at ?? startedOnNode(run) });
      } else if (seen === 'finished') {
        await this.finish(node, run, listed.get(run.job));
      } else if (run.state === 'dispatching') {
        // Dispatching for over a minute and unknown to the node: the master stopped mid-dispatch.
        if (run.created_at < requestedAt - 60_000) {
          const ended = await this.runs.update(run, { state: 'failed', outcome: 'failed', ended_at: now, note: `the master stopped while sending this run to ${node.name}; the node never got it` });
          this.emit('finished', ended);
        }
      } else if ((run.dispatched_at ?? run.created_at) < requestedAt) {
        // A cancelled pending job is simply dropped by the node (as Scrapyd does).
        const ended = run.cancel_requested
          ? await this.runs.update(run, { state: 'finished', outcome: 'cancelled', ended_at: now, note: run.note ?? 'cancelled before it started' })
          : await this.runs.update(run, { state: 'finished', outcome: 'unknown', ended_at: now, note: `node ${node.name} no longer lists this job` });
        this.emit('finished', ended);
      }
    }
    for (const run of await this.runs.lostOfNode(node.id, now - DUPLICATE_WINDOW_MS)) {
      const seen = states.get(run.job);
      const replacement = run.has_successor ? replacementState(await this.runs.successorsOf(run.id)) : 'none';
      // Its replacement is still on its way to a node: not confirmed yet, so this copy stays for now.
      if (replacement === 'in-flight' && (seen === 'pending' || seen === 'running')) continue;
      if (replacement === 'none') {
        // Nothing else is doing this work: the run was only out of sight. Take it back.
        if (seen === 'pending' || seen === 'running') {
          await this.runs.update(run, { state: seen, outcome: null, ended_at: null, started_at: seen === 'running' ? run.started_at ?? startedOnNode(run) : run.started_at, note: `node ${node.name} came back still ${seen === 'running' ? 'running' : 'holding'} this run` });
        } else if (seen === 'finished') {
          await this.finish(node, { ...run, state: 'running' }, listed.get(run.job));
        }
        continue;
      }
      if (seen !== 'pending' && seen !== 'running') continue;
      // It was re-run elsewhere while this node was away, and that copy is confirmed running (or
      // ran): stop this one (each heartbeat escalates). Never before: that would lose the only copy.
      await this.clientFor(node).cancel(run.project, run.job).catch(() => undefined);
      const note = `node ${node.name} came back still ${seen === 'running' ? 'running' : 'holding'} this run after it was re-dispatched: the duplicate was cancelled`;
      if (run.note !== note) await this.runs.update(run, { note });
    }
  }

  /**
   * The node lists the job finished: record how it ended, with the start and end times the node
   * measured (exact from spiderplane's /jobs.json, else Scrapyd's listjobs strings), not when this
   * master happened to notice.
   */
  private async finish(node: NodeRow, run: RunRow, listed?: NodeJobTimes): Promise<void> {
    const details: SlaveJob | null = node.extensions ? await this.clientFor(node).jobDetails(run.job).catch(() => null) : null;
    const now = Date.now();
    // The slave lists a job finished the moment its process ends and completes the record (items,
    // errors, the final outcome) right after: take it at the next heartbeat, unless that never comes.
    const incomplete = details !== null && details.state === 'finished' && details.error_count === null && details.pid !== null;
    const endedAgo = details?.end_timestamp ? now - details.end_timestamp * 1000 : Infinity;
    if (incomplete && endedAgo < INCOMPLETE_RECORD_WAIT_MS) return;
    const times = nodeJobTimes(details ?? listed ?? {}, { createdAt: run.created_at, now });
    if (details?.outcome === 'lost' && (await this.runs.get(run.id))?.state !== 'lost' && (await this.runs.successorsOf(run.id)).length === 0) {
      // The slave stopped it (its master lease expired: this master was frozen, restarted or cut
      // off from it) or lost it in a crash, and no copy runs elsewhere: fail it over now, once.
      const lost = await this.runs.update(run, {
        state: 'lost', outcome: 'lost', started_at: times.started ?? run.started_at ?? times.ended ?? now, ended_at: times.ended ?? now,
        exit_code: details.exit_code ?? null, items_count: details.items_count ?? null, error_count: details.error_count ?? null,
        note: `node ${node.name}: ${details.note ?? 'lost'}`,
      });
      this.emit('lost', lost);
      await this.failOver(lost, node);
      return;
    }
    // Before the state flips: whoever sees the run finished also sees which limit stopped it.
    if (details?.limit_hit) await this.dispatcher.policies?.setLimitHit(run.id, details.limit_hit);
    const ended = await this.runs.update(run, {
      state: 'finished',
      outcome: details?.outcome ?? (run.cancel_requested ? 'cancelled' : 'finished'),
      started_at: times.started ?? run.started_at ?? times.ended ?? now,
      ended_at: times.ended ?? now,
      exit_code: details?.exit_code ?? null,
      items_count: details?.items_count ?? null,
      error_count: details?.error_count ?? null,
      note: details?.note ?? run.note,
    });
    this.emit('finished', (await this.runs.get(run.id)) ?? ended);
  }

  /** The node is offline: its active runs are lost and, within their retry budget, run elsewhere. */
  async onOffline(node: NodeRow, reason = 'went offline'): Promise<void> {
    for (const run of await this.runs.activeOfNode(node.id)) {
      const lost = await this.runs.update(run, { state: 'lost', outcome: 'lost', ended_at: Date.now(), note: `node ${node.name} ${reason} while this run was ${run.state}` });
      this.emit('lost', lost);
      await this.failOver(lost, node);
    }
  }

  /**
   * Re-dispatches a lost run elsewhere within its failover budget. A keep_running run is not: it
   * goes on where it was (its slave does not stop it either) and is taken back when the node returns.
   */
  private async failOver(lost: RunRow, node: NodeRow): Promise<void> {
    const run = lost;
    if (run.cancel_requested || run.retries_left <= 0) return;
    if (policyOfRun(run).keep_running) {
      await this.runs.update(lost, { note: `${lost.note}; kept running on ${node.name} (keep_running): not re-dispatched` });
      return;
    }
    try {
      const [next] = await this.dispatcher.dispatch({
        project: run.project, spider: run.spider, version: run.version, args: JSON.parse(run.args) as Record<string, string>,
        settings: JSON.parse(run.settings) as Record<string, string>, priority: run.priority, target: { mode: 'auto' },
        scheduleId: run.schedule_id, retriesLeft: run.retries_left - 1, createdBy: 'failover', retryOf: run, excludeNodeIds: new Set([node.id]),
        policy: policyOfRun(run), retryNumber: run.retry_number,
      });
      if (next) {
        await this.runs.update(lost, { note: `${lost.note}; re-dispatched as ${next.job} on ${next.node}` });
        this.emit('redispatched', lost, next);
      }
    } catch (e) {
      await this.runs.update(lost, { note: `${lost.note}; could not re-dispatch: ${(e as Error).message}` });
    }
  }

  /** Cancels a run on its node (a pending one never starts; a running one gets SIGINT, then escalation). */
  async cancel(run: RunRow, signal?: string): Promise<string | null> {
    await this.runs.markCancelRequested(run.id);
    // A failed run waiting for its retry: cancelling it drops the retry.
    if (run.retry_at !== null && await this.dispatcher.policies?.dropRetry(run.id)) {
      await this.runs.update((await this.runs.get(run.id))!, { note: `${run.note ? `${run.note}; ` : ''}retry cancelled` });
      return null;
    }
    const node = run.node_id === null ? undefined : await this.nodes.byId(run.node_id);
    if (!node) throw new Error(`run ${run.job} has no node to cancel it on`);
    if (run.state === 'dispatching' || run.state === 'pending' || run.state === 'running') {
      const prev = await this.clientFor(node).cancel(run.project, run.job, signal);
      if (prev === 'pending') {
        // The node dropped it from its queue: it will never run.
        const ended = await this.runs.update((await this.runs.get(run.id))!, { state: 'finished', outcome: 'cancelled', ended_at: Date.now(), note: 'cancelled before it started' });
        this.emit('finished', ended);
      }
      return prev;
    }
    return null;
  }
}

/**
 * Where a lost run's replacement stands: 'confirmed' once one is running or ran on a node,
 * 'in-flight' while one is still being sent or queued, 'none' when every attempt failed.
 */
export function replacementState(successors: ReadonlyArray<Pick<RunRow, 'state' | 'started_at'>>): 'confirmed' | 'in-flight' | 'none' {
  if (successors.some((r) => r.state === 'running' || r.state === 'finished' || (r.state === 'lost' && r.started_at !== null))) return 'confirmed';
  if (successors.some((r) => r.state === 'dispatching' || r.state === 'pending')) return 'in-flight';
  return 'none';
}

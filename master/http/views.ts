import type { RunRow } from '../runs/run_store.ts';
import type { ScheduleRow } from '../schedules/schedule_store.ts';
import type { Target } from '../runs/dispatcher.ts';
import { parseStoredPolicy } from '../runs/run_policy.ts';
import type { LimitHit } from '../../common/types.ts';

/** How a run looks in the API: parsed args and settings, times as epoch ms (started_at/ended_at as the node measured them; the others on the master's clock). */
export function runView(r: RunRow, jobOf?: (id: number) => string | undefined) {
  return {
    /** the job id of the run this one re-runs (retry_of is the master's internal row id) */
    retry_of_job: r.retry_of !== null && jobOf ? jobOf(r.retry_of) ?? null : null,
    job: r.job, project: r.project, spider: r.spider, version: r.version, node: r.node, state: r.state, outcome: r.outcome,
    args: JSON.parse(r.args) as Record<string, string>, settings: JSON.parse(r.settings) as Record<string, string>, priority: r.priority,
    schedule_id: r.schedule_id, attempt: r.attempt, retries_left: r.retries_left, retry_of: r.retry_of,
    created_at: r.created_at, dispatched_at: r.dispatched_at, started_at: r.started_at, ended_at: r.ended_at,
    exit_code: r.exit_code, items_count: r.items_count, error_count: r.error_count, cancel_requested: r.cancel_requested === 1,
    note: r.note, created_by: r.created_by,
    // limits (null = the slave's default) and failure retries; retry_number 0 = not a failure retry
    max_runtime: r.max_runtime, max_memory: r.max_memory, nice: r.nice, retries: r.retries, retry_delay: r.retry_delay,
    retry_number: r.retry_number, retry_at: r.retry_at,
    /** a failed run whose retry is planned and not dispatched yet */
    retry_pending: r.retry_at !== null && r.retry_claimed_at === null && r.cancel_requested === 0,
    limit_hit: r.limit_hit ? (JSON.parse(r.limit_hit) as LimitHit) : null,
    service_id: r.service_id ?? null,
  };
}

export function scheduleView(s: ScheduleRow, next: Date[] | null) {
  return {
    id: s.id, name: s.name, cron: s.cron, timezone: s.timezone, project: s.project, spider: s.spider, version: s.version,
    target: JSON.parse(s.target) as Target, args: JSON.parse(s.args) as Record<string, string>, settings: JSON.parse(s.settings) as Record<string, string>,
    priority: s.priority, enabled: s.enabled === 1, overlap: s.overlap, missed: s.missed, max_retries: s.max_retries,
    ...parseStoredPolicy(s.run_policy),
    last_fire_at: s.last_fire_at, next_runs: next?.map((d) => d.toISOString()) ?? [], created_at: s.created_at, updated_at: s.updated_at,
  };
}

import type Router from '@koa/router';
import type { Context } from 'koa';
import type { JobState, NodeMetrics, RunLimits, SlaveJob } from '../../common/types.ts';
import { formatScrapydTime } from '../../common/scrapyd_time.ts';
import { ApiError, scrapydEndpoint } from '../../common/http/scrapyd_protocol.ts';
import { itemsUrl, logUrl, type SlaveCore } from '../slave_core.ts';
import type { JobRow } from '../jobs/job_store.ts';
import { limitColumns } from '../jobs/job_limits.ts';
import type { SystemMetrics } from '../metrics/system_metrics.ts';
import { eventLoopLag, type LagFigures } from '../../common/event_loop_lag.ts';

/** Event-loop lag in Prometheus text: p50, p99 and max over the window, and the stalled-time counter. */
export function lagPrometheusLines(prefix: string, lag: LagFigures, labels: string): string[] {
  const l = labels ? `{${labels}}` : '';
  const window = `over the last ${lag.window_seconds} s, in seconds`;
  return [
    `# HELP ${prefix}_event_loop_lag_p50_seconds Median event-loop lag ${window}.`, `# TYPE ${prefix}_event_loop_lag_p50_seconds gauge`, `${prefix}_event_loop_lag_p50_seconds${l} ${lag.p50_ms / 1000}`,
    `# HELP ${prefix}_event_loop_lag_p99_seconds 99th percentile of the event-loop lag ${window}.`, `# TYPE ${prefix}_event_loop_lag_p99_seconds gauge`, `${prefix}_event_loop_lag_p99_seconds${l} ${lag.p99_ms / 1000}`,
    `# HELP ${prefix}_event_loop_lag_max_seconds Longest event-loop lag ${window}.`, `# TYPE ${prefix}_event_loop_lag_max_seconds gauge`, `${prefix}_event_loop_lag_max_seconds${l} ${lag.max_ms / 1000}`,
    `# HELP ${prefix}_event_loop_stalled_seconds_total Time the event loop was held up by ${lag.stall_threshold_ms} ms or more at a time.`, `# TYPE ${prefix}_event_loop_stalled_seconds_total counter`, `${prefix}_event_loop_stalled_seconds_total${l} ${lag.stalled_ms_total / 1000}`,
  ];
}

function intParam(ctx: Context, name: string, def: number, max: number): number {
  const raw = ctx.query[name];
  if (raw === undefined) return def;
  const n = Number(raw);
  if (typeof raw !== 'string' || !Number.isInteger(n) || n < 0 || n > max) throw new ApiError(`${name} is invalid: expected an integer from 0 to ${max}`);
  return n;
}

function strParam(ctx: Context, name: string): string | undefined {
  const raw = ctx.query[name];
  if (Array.isArray(raw)) throw new ApiError(`${name} is invalid: give it once`);
  return raw;
}

export function toSlaveJob(r: JobRow, pid: number | null, limits?: RunLimits): SlaveJob {
  const t = (x: number | null) => (x === null ? null : formatScrapydTime(x));
  const ended = r.state === 'finished';
  return {
    id: r.id, project: r.project, spider: r.spider, version: r.version, run_version: r.run_version, state: r.state,
    priority: r.priority, args: JSON.parse(r.args) as Record<string, string>, settings: JSON.parse(r.settings) as Record<string, string>,
    pid: r.state === 'running' ? pid ?? r.pid : r.pid, created_time: formatScrapydTime(r.created_at), start_time: t(r.start_time), end_time: t(r.end_time),
    start_timestamp: r.start_time, end_timestamp: ended ? r.end_time : null,
    duration_seconds: r.start_time === null ? null : Math.round(((ended ? r.end_time ?? r.start_time : Date.now() / 1000) - r.start_time) * 1000) / 1000,
    exit_code: r.exit_code, signal: r.signal, outcome: r.outcome, items_count: r.items_count, error_count: r.error_count,
    log_url: r.log_exists ? logUrl(r) : null, items_url: r.items_exists ? itemsUrl(r) : null, note: r.note,
    ...(limits ? { limits } : {}), limit_hit: limitColumns(r).hit,
  };
}

/** Prometheus text exposition of the node's metrics. */
export function prometheusText(m: NodeMetrics, node: string): string {
  const label = `node="${node.replace(/["\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\' + c))}"`;
  const lines: string[] = [];
  const gauge = (name: string, help: string, value: number | null, extra = '') => {
    if (value === null) return;
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name}{${label}${extra}} ${value}`);
  };
  gauge('spiderplane_cpu_percent', 'CPU use of the host in percent.', m.cpu_percent);
  gauge('spiderplane_load1', 'One-minute load average.', m.load[0]);
  gauge('spiderplane_load5', 'Five-minute load average.', m.load[1]);
  gauge('spiderplane_load15', 'Fifteen-minute load average.', m.load[2]);
  gauge('spiderplane_memory_used_bytes', 'Memory in use (total minus available).', m.memory.used_bytes);
  gauge('spiderplane_memory_total_bytes', 'Total memory.', m.memory.total_bytes);
  gauge('spiderplane_network_receive_bytes_per_second', 'Received bytes per second, all non-loopback interfaces.', m.network.rx_bytes_per_sec);
  gauge('spiderplane_network_transmit_bytes_per_second', 'Sent bytes per second, all non-loopback interfaces.', m.network.tx_bytes_per_sec);
  gauge('spiderplane_uptime_seconds', 'Host uptime.', m.uptime_seconds);
  gauge('spiderplane_daemon_uptime_seconds', 'Slave daemon uptime.', m.daemon_uptime_seconds);
  gauge('spiderplane_jobs_running', 'Spiders running now.', m.running);
  gauge('spiderplane_jobs_pending', 'Jobs waiting for a slot.', m.pending);
  gauge('spiderplane_max_proc', 'Most spiders run at once.', m.max_proc);
  if (m.event_loop_lag) lines.push(...lagPrometheusLines('spiderplane', m.event_loop_lag, label));
  if (m.disks.length) {
    lines.push('# HELP spiderplane_disk_used_percent Disk use per mount in percent.', '# TYPE spiderplane_disk_used_percent gauge');
    for (const d of m.disks) lines.push(`spiderplane_disk_used_percent{${label},mount="${d.mount.replace(/["\\]/g, '\\$&')}"} ${d.used_percent}`);
  }
  return lines.join('\n') + '\n';
}

/** spiderplane's own endpoints, beside the Scrapyd-compatible ones, in the same envelope. */
export function mountExtensionApi(router: Router, core: SlaveCore, metrics: SystemMetrics, nodeName: () => string): void {
  const lag = eventLoopLag(); // started now, so its window covers the daemon from its start
  const nodeMetrics = (): NodeMetrics => {
    const c = core.jobs.counts();
    return { ...metrics.current(), running: c.running, pending: c.pending, max_proc: core.launcher.maxProc, event_loop_lag: lag.figures() };
  };

  router.all('/metrics.json', scrapydEndpoint(nodeName, 'GET', () => ({ ...nodeMetrics() })));

  router.get('/metrics', (ctx) => {
    ctx.set('Content-Type', 'text/plain; version=0.0.4; charset=utf-8');
    ctx.body = prometheusText(nodeMetrics(), nodeName());
  });

  router.all('/errors.json', scrapydEndpoint(nodeName, 'GET', (ctx) => {
    const limit = intParam(ctx, 'limit', 100, 1000);
    const errors = core.jobs.recentErrors({ limit, project: strParam(ctx, 'project'), job: strParam(ctx, 'job') })
      .map((e) => ({ job: e.job, project: e.project, spider: e.spider, time: e.time, level: e.level, logger: e.logger, message: e.message, traceback: e.traceback }));
    return { errors };
  }));

  router.all('/jobs.json', scrapydEndpoint(nodeName, 'GET', (ctx) => {
    const state = strParam(ctx, 'state');
    if (state !== undefined && !['pending', 'running', 'finished'].includes(state)) throw new ApiError(`state '${state}' is invalid: use pending, running or finished`);
    const rows = core.jobs.query({
      state: state as JobState | undefined, project: strParam(ctx, 'project'), spider: strParam(ctx, 'spider'), id: strParam(ctx, 'job'),
      limit: intParam(ctx, 'limit', 100, 10000), offset: intParam(ctx, 'offset', 0, Number.MAX_SAFE_INTEGER),
    });
    return { jobs: rows.map((r) => toSlaveJob(r, core.launcher.pidOf(r.uid) ?? null, core.launcher.limitsOf(r))) };
  }));
}

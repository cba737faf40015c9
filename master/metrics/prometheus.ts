// The cluster's figures in the Prometheus text exposition format (version 0.0.4), for GET /metrics.
import type { NodeMetrics } from '../../common/types.ts';
import type { LagFigures } from '../../common/event_loop_lag.ts';

export interface ClusterFigures {
  nodes: Array<{ name: string; status: string; draining: boolean; running: number; pending: number; max_proc: number | null; last_ok_at: number | null; metrics: NodeMetrics | null }>;
  runs: Record<string, number>;
  alerts: Record<string, number>;
  outbox: Record<string, number>;
  now: number;
  /** The master's own event-loop lag. */
  eventLoopLag?: LagFigures;
  /** Whether this master leads, the lease's epoch, and how many masters share the database. */
  leadership?: { leader: boolean; epoch: number; masters: number };
}

export function escapeLabel(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : '\\' + c));
}

export function prometheusText(f: ClusterFigures): string {
  const out: string[] = [];
  const family = (name: string, help: string, type: 'gauge' | 'counter', samples: Array<[Record<string, string>, number | null]>) => {
    const present = samples.filter((s): s is [Record<string, string>, number] => s[1] !== null && Number.isFinite(s[1]));
    if (!present.length) return;
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of present) {
      const l = Object.entries(labels).map(([k, x]) => `${k}="${escapeLabel(x)}"`).join(',');
      out.push(`${name}${l ? `{${l}}` : ''} ${v}`);
    }
  };
  const per = (pick: (n: ClusterFigures['nodes'][number]) => number | null) => f.nodes.map((n) => [{ node: n.name }, pick(n)] as [Record<string, string>, number | null]);
  family('spiderplane_node_up', 'Whether the node is online (1) or not (0).', 'gauge', per((n) => (n.status === 'online' ? 1 : 0)));
  family('spiderplane_node_draining', 'Whether the node takes no new runs (1).', 'gauge', per((n) => (n.draining ? 1 : 0)));
  family('spiderplane_node_last_heartbeat_seconds', 'Unix time of the last good heartbeat, on the master clock.', 'gauge', per((n) => (n.last_ok_at === null ? null : n.last_ok_at / 1000)));
  family('spiderplane_node_jobs_running', 'Spiders running on the node at the last heartbeat.', 'gauge', per((n) => n.running));
  family('spiderplane_node_jobs_pending', 'Jobs waiting on the node at the last heartbeat.', 'gauge', per((n) => n.pending));
  family('spiderplane_node_max_proc', 'Most spiders the node runs at once.', 'gauge', per((n) => n.max_proc));
  family('spiderplane_node_cpu_percent', 'CPU use of the node in percent.', 'gauge', per((n) => n.metrics?.cpu_percent ?? null));
  family('spiderplane_node_load1', 'One-minute load average of the node.', 'gauge', per((n) => n.metrics?.load[0] ?? null));
  family('spiderplane_node_memory_used_percent', 'Memory in use on the node, percent.', 'gauge', per((n) => n.metrics?.memory.used_percent ?? null));
  family('spiderplane_node_memory_used_bytes', 'Memory in use on the node.', 'gauge', per((n) => n.metrics?.memory.used_bytes ?? null));
  family('spiderplane_node_network_receive_bytes_per_second', 'Bytes received per second by the node.', 'gauge', per((n) => n.metrics?.network.rx_bytes_per_sec ?? null));
  family('spiderplane_node_network_transmit_bytes_per_second', 'Bytes sent per second by the node.', 'gauge', per((n) => n.metrics?.network.tx_bytes_per_sec ?? null));
  family('spiderplane_node_disk_used_percent', 'Disk use per mount of the node, percent.', 'gauge',
    f.nodes.flatMap((n) => (n.metrics?.disks ?? []).map((d) => [{ node: n.name, mount: d.mount }, d.used_percent] as [Record<string, string>, number])));
  family('spiderplane_runs', 'Runs the master knows, by state.', 'gauge', Object.entries(f.runs).map(([state, v]) => [{ state }, v]));
  family('spiderplane_alerts', 'Alert firings, by state.', 'gauge', Object.entries(f.alerts).map(([state, v]) => [{ state }, v]));
  family('spiderplane_alert_mails', 'Alert mails in the outbox, by state.', 'gauge', Object.entries(f.outbox).map(([state, v]) => [{ state }, v]));
  if (f.leadership) {
    family('spiderplane_master_leader', 'Whether this master leads (1) or stands by (0).', 'gauge', [[{}, f.leadership.leader ? 1 : 0]]);
    family('spiderplane_master_epoch', 'The leader lease\'s fencing epoch (it grows with every change of leader).', 'gauge', [[{}, f.leadership.epoch]]);
    family('spiderplane_masters', 'Masters seen sharing this database lately.', 'gauge', [[{}, f.leadership.masters]]);
  }
  const lag = f.eventLoopLag;
  if (lag) {
    const over = `over the last ${lag.window_seconds} s, in seconds`;
    family('spiderplane_master_event_loop_lag_p50_seconds', `Median event-loop lag of the master ${over}.`, 'gauge', [[{}, lag.p50_ms / 1000]]);
    family('spiderplane_master_event_loop_lag_p99_seconds', `99th percentile of the master's event-loop lag ${over}.`, 'gauge', [[{}, lag.p99_ms / 1000]]);
    family('spiderplane_master_event_loop_lag_max_seconds', `Longest event-loop lag of the master ${over}.`, 'gauge', [[{}, lag.max_ms / 1000]]);
    family('spiderplane_master_event_loop_stalled_seconds_total', `Time the master's event loop was held up by ${lag.stall_threshold_ms} ms or more at a time.`, 'counter', [[{}, lag.stalled_ms_total / 1000]]);
  }
  family('spiderplane_node_event_loop_lag_p99_seconds', "99th percentile of the slave daemon's event-loop lag over the last minute, at the last heartbeat.", 'gauge',
    per((n) => (n.metrics?.event_loop_lag ? n.metrics.event_loop_lag.p99_ms / 1000 : null)));
  family('spiderplane_node_event_loop_lag_max_seconds', "Longest event-loop lag of the slave daemon over the last minute, at the last heartbeat.", 'gauge',
    per((n) => (n.metrics?.event_loop_lag ? n.metrics.event_loop_lag.max_ms / 1000 : null)));
  family('spiderplane_nodes', 'Nodes, by status.', 'gauge', ['online', 'offline', 'unknown'].map((s) => [{ status: s }, f.nodes.filter((n) => n.status === s).length]));
  return out.join('\n') + '\n';
}

// Pure evaluation of alert rules: given the rules, what the cluster looks like now and which
// firings are open, say what fires and what recovers. No SQL, no I/O, no clock of its own, so it
// is cheap to test and to benchmark (bench/alerts.bench.ts).

export const NODE_KINDS = ['node_offline', 'cpu', 'memory', 'disk', 'network_rx', 'network_tx'] as const;
export const RUN_KINDS = ['job_failed', 'job_finished_with_errors', 'job_errors', 'job_no_items'] as const;
export const ALERT_KINDS = [...NODE_KINDS, ...RUN_KINDS, 'job_too_long', 'schedule_missed', 'service_failing'] as const;
export type NodeKind = (typeof NODE_KINDS)[number];
export type RunKind = (typeof RUN_KINDS)[number];
export type AlertKind = (typeof ALERT_KINDS)[number];
export type Scope = 'all' | 'node' | 'project' | 'spider';

export interface AlertRule {
  id: number;
  name: string;
  kind: AlertKind;
  threshold: number | null;
  duration_seconds: number;
  scope: Scope;
  scope_node: string | null;
  scope_project: string | null;
  scope_spider: string | null;
  recipients: string[];
  enabled: boolean;
  created_at: number;
  updated_at: number;
}

/** A node as the rules see it. `disk` is the fullest mount. */
export interface NodeSnapshot {
  name: string;
  status: 'online' | 'offline' | 'unknown';
  statusSince: number;
  cpu: number | null;
  mem: number | null;
  disk: { mount: string; percent: number } | null;
  rx: number | null;
  tx: number | null;
}

/** What a finished (or lost) run tells the job rules. */
export interface RunFacts {
  job: string;
  project: string;
  spider: string;
  node: string | null;
  /** 'succeeded' | 'finished_with_errors' | 'failed' | 'cancelled' | 'lost' | 'unknown' | … */
  outcome: string | null;
  exit_code: number | null;
  items_count: number | null;
  error_count: number | null;
  note: string | null;
  ended_at: number;
  /**
   * Failure retries of the run's chain: `phrase` is "retry 1 of 3 in 60 s" (pending) or "gave up
   * after 3 retries"; `chain` is the job id of the chain's first run. Absent: no retries configured.
   */
  retry?: { phrase: string; pending: boolean; chain: string } | null;
}

/** Outcomes the job_failed rule counts as failures (limits that stopped a run included). */
export const FAILED_OUTCOMES: readonly string[] = ['failed', 'lost', 'timeout', 'memory'];

const FAILED_WORDS: Record<string, string> = { failed: 'failed', lost: 'lost', timeout: 'timed out', memory: 'went over its memory limit' };

export interface RunningRun {
  job: string;
  project: string;
  spider: string;
  node: string | null;
  started_at: number;
}

export interface ScheduleFire {
  schedule_id: number;
  schedule_name: string;
  project: string;
  spider: string;
  scheduled_for: number;
  outcome: string;
  detail: string | null;
}

/** A condition that now fires. */
export interface Hit {
  ruleId: number;
  subjectKey: string;
  title: string;
  link: string | null;
  value: number | null;
  threshold: number | null;
  since: number;
  detail: string | null;
  /** For job rules: the run whose error lines the mail should quote. */
  job?: string;
}

/** An open firing whose condition is over. */
export interface Recovery {
  ruleId: number;
  subjectKey: string;
  value: number | null;
  detail: string;
  /** closed without a mail (superseded by another firing, e.g. a retry chain that gave up) */
  silent?: boolean;
}

export interface Evaluation {
  fire: Hit[];
  resolve: Recovery[];
}

/** Open firings: rule id -> subject keys. */
export type OpenFirings = ReadonlyMap<number, ReadonlySet<string>>;

const METRIC: Record<Exclude<NodeKind, 'node_offline'>, { label: string; unit: 'percent' | 'rate'; pick: (n: NodeSnapshot) => number | null }> = {
  cpu: { label: 'CPU', unit: 'percent', pick: (n) => n.cpu },
  memory: { label: 'memory', unit: 'percent', pick: (n) => n.mem },
  disk: { label: 'disk', unit: 'percent', pick: (n) => n.disk?.percent ?? null },
  network_rx: { label: 'network receive', unit: 'rate', pick: (n) => n.rx },
  network_tx: { label: 'network send', unit: 'rate', pick: (n) => n.tx },
};

export function isNodeKind(k: AlertKind): k is NodeKind { return (NODE_KINDS as readonly string[]).includes(k); }
export function isRunKind(k: AlertKind): k is RunKind { return (RUN_KINDS as readonly string[]).includes(k); }

/** A figure as a person reads it: '93.5 %', '12.3 MB/s', '42'. */
export function formatFigure(kind: AlertKind, v: number | null): string {
  if (v === null) return '—';
  if (kind === 'cpu' || kind === 'memory' || kind === 'disk') return `${Math.round(v * 10) / 10} %`;
  if (kind === 'network_rx' || kind === 'network_tx') {
    const units = ['B/s', 'kB/s', 'MB/s', 'GB/s'];
    let x = v;
    let i = 0;
    while (x >= 1000 && i < units.length - 1) { x /= 1000; i++; }
    return `${Math.round(x * 10) / 10} ${units[i]}`;
  }
  if (kind === 'job_too_long') return `${Math.round(v)} s`;
  return String(Math.round(v * 100) / 100);
}

function nodeInScope(rule: AlertRule, node: string | null): boolean {
  return rule.scope !== 'node' || rule.scope_node === node;
}

export function runInScope(rule: AlertRule, r: { project: string; spider: string; node: string | null }): boolean {
  switch (rule.scope) {
    case 'all': return true;
    case 'node': return r.node === rule.scope_node;
    case 'project': return r.project === rule.scope_project;
    case 'spider': return r.project === rule.scope_project && r.spider === rule.scope_spider;
  }
}

/**
 * The node rules (offline, CPU, memory, disk, network) and job_too_long, evaluated once per
 * heartbeat round. It remembers since when each metric has been over its threshold (in memory:
 * after a master restart a duration starts counting again, which can only delay a mail).
 */
export class RuleEngine {
  private readonly overSince = new Map<string, number>();

  evaluateNodes(rules: readonly AlertRule[], nodes: readonly NodeSnapshot[], open: OpenFirings, now: number): Evaluation {
    const out: Evaluation = { fire: [], resolve: [] };
    const byName = new Map<string, NodeSnapshot>();
    for (const n of nodes) byName.set(n.name, n);
    const seen = new Set<string>();
    for (const rule of rules) {
      if (!rule.enabled || !isNodeKind(rule.kind)) continue;
      const openKeys = open.get(rule.id);
      const holdMs = rule.duration_seconds * 1000;
      const candidates = rule.scope === 'node' ? (byName.has(rule.scope_node ?? '') ? [byName.get(rule.scope_node ?? '')!] : []) : nodes;
      for (const node of candidates) {
        const subjectKey = `node:${node.name}`;
        const isOpen = openKeys?.has(subjectKey) === true;
        const link = `/nodes/${encodeURIComponent(node.name)}`;
        if (rule.kind === 'node_offline') {
          if (node.status === 'offline') {
            if (!isOpen && now - node.statusSince >= holdMs) {
              out.fire.push({ ruleId: rule.id, subjectKey, title: `node ${node.name} offline`, link, value: null, threshold: null, since: node.statusSince, detail: null });
            }
          } else if (node.status === 'online' && isOpen) {
            out.resolve.push({ ruleId: rule.id, subjectKey, value: null, detail: `node ${node.name} is back online` });
          }
          continue;
        }
        const m = METRIC[rule.kind];
        const key = `${rule.id}|${node.name}`;
        seen.add(key);
        const value = node.status === 'online' ? m.pick(node) : null;
        if (value === null) continue; // no figure (offline, or not sampled yet): nothing changes
        const threshold = rule.threshold ?? 0;
        if (value > threshold) {
          let since = this.overSince.get(key);
          if (since === undefined) { since = now; this.overSince.set(key, since); }
          if (!isOpen && now - since >= holdMs) {
            const where = rule.kind === 'disk' && node.disk ? ` (${node.disk.mount})` : '';
            out.fire.push({
              ruleId: rule.id, subjectKey, link, value, threshold, since,
              title: `node ${node.name} ${m.label}${where} over ${formatFigure(rule.kind, threshold)}`,
              detail: `${m.label}${where} has been ${formatFigure(rule.kind, value)} or more for ${Math.round((now - since) / 1000)} s (rule: over ${formatFigure(rule.kind, threshold)} for ${rule.duration_seconds} s)`,
            });
          }
        } else {
          this.overSince.delete(key);
          if (isOpen) out.resolve.push({ ruleId: rule.id, subjectKey, value, detail: `${m.label} is ${formatFigure(rule.kind, value)}, at or under ${formatFigure(rule.kind, threshold)}` });
        }
      }
      // Firings of nodes that left the rule's view (removed, or the rule's scope changed).
      if (openKeys) {
        for (const k of openKeys) {
          const name = k.slice('node:'.length);
          const n = byName.get(name);
          if (!n || !nodeInScope(rule, name)) out.resolve.push({ ruleId: rule.id, subjectKey: k, value: null, detail: n ? 'the rule no longer covers this node' : `node ${name} was removed` });
        }
      }
    }
    // Forget over-threshold times of rules or nodes that are gone.
    if (this.overSince.size > seen.size) for (const k of this.overSince.keys()) if (!seen.has(k)) this.overSince.delete(k);
    return out;
  }

  evaluateRunning(rules: readonly AlertRule[], running: readonly RunningRun[], open: OpenFirings, now: number): Evaluation {
    const out: Evaluation = { fire: [], resolve: [] };
    for (const rule of rules) {
      if (!rule.enabled || rule.kind !== 'job_too_long') continue;
      const openKeys = open.get(rule.id);
      const still = new Set<string>();
      const limitMs = (rule.threshold ?? 0) * 1000;
      for (const r of running) {
        if (!runInScope(rule, r)) continue;
        const subjectKey = `job:${r.job}`;
        still.add(subjectKey);
        const elapsed = now - r.started_at;
        if (elapsed > limitMs && openKeys?.has(subjectKey) !== true) {
          out.fire.push({
            ruleId: rule.id, subjectKey, title: `job ${r.project}/${r.spider} ${r.job} running over ${formatFigure('job_too_long', rule.threshold)}`,
            link: `/jobs/${encodeURIComponent(r.job)}`, value: elapsed / 1000, threshold: rule.threshold, since: r.started_at + limitMs,
            detail: `running for ${Math.round(elapsed / 1000)} s on ${r.node ?? '?'} (limit ${rule.threshold} s)`, job: r.job,
          });
        }
      }
      if (openKeys) for (const k of openKeys) if (!still.has(k)) out.resolve.push({ ruleId: rule.id, subjectKey: k, value: null, detail: 'the job is no longer running' });
    }
    return out;
  }
}

/**
 * The job rules for one run that ended. Firings are per spider (subject 'spider:P/S'): a spider
 * that keeps failing mails once, and once more when one of its runs is fine again.
 */
export function evaluateRun(rules: readonly AlertRule[], run: RunFacts, open: OpenFirings): Evaluation {
  const out: Evaluation = { fire: [], resolve: [] };
  const subjectKey = `spider:${run.project}/${run.spider}`;
  const name = `${run.project}/${run.spider}`;
  const link = `/jobs/${encodeURIComponent(run.job)}`;
  const clean = run.outcome === 'succeeded';
  // A failure whose retry is pending fires under its chain's own key (one mail per chain, saying
  // when the retry comes); the failure that exhausts the retries fires under the spider's key.
  const chainKey = (chain: string) => `${subjectKey}#retry:${chain}`;
  for (const rule of rules) {
    if (!rule.enabled || !isRunKind(rule.kind) || !runInScope(rule, run)) continue;
    const openKeys = open.get(rule.id);
    let key = subjectKey;
    const isOpen = () => openKeys?.has(key) === true;
    let breach: boolean | null = null; // null: this run says nothing either way
    let value: number | null = null;
    let title = '';
    let detail = '';
    if (rule.kind === 'job_failed') {
      if (run.outcome !== null && FAILED_OUTCOMES.includes(run.outcome)) {
        breach = true;
        const retry = run.outcome === 'lost' ? null : run.retry ?? null;
        if (retry?.pending) key = chainKey(retry.chain);
        title = `job ${name} ${FAILED_WORDS[run.outcome]}${retry ? `, ${retry.phrase}` : ''}`;
        detail = run.outcome === 'lost' ? run.note ?? `lost with its node ${run.node ?? ''}` : `exit code ${run.exit_code ?? '?'} on ${run.node ?? '?'}${run.note ? ` (${run.note})` : ''}`;
        if (retry) detail += `; ${retry.phrase}`;
        value = run.exit_code;
        if (retry && !retry.pending && openKeys?.has(chainKey(retry.chain))) {
          out.resolve.push({ ruleId: rule.id, subjectKey: chainKey(retry.chain), value, detail: `${retry.phrase}: see the failure alert`, silent: true });
        }
      } else if (clean || run.outcome === 'finished_with_errors') {
        breach = false; // it exited 0
        // A retry that succeeded closes its chain's alert.
        for (const k of openKeys ?? []) {
          if (k.startsWith(`${subjectKey}#retry:`)) out.resolve.push({ ruleId: rule.id, subjectKey: k, value: null, detail: `run ${run.job} of ${name} succeeded${run.retry ? ' on retry' : ''}` });
        }
      }
    } else if (rule.kind === 'job_finished_with_errors') {
      if (run.outcome === 'finished_with_errors') {
        breach = true;
        title = `job ${name} finished with errors`;
        detail = `${run.note ?? 'finished with errors'} on ${run.node ?? '?'}`;
        value = run.error_count;
      } else if (clean) breach = false;
    } else if (rule.kind === 'job_errors') {
      if (run.error_count !== null && run.outcome !== 'cancelled' && run.outcome !== 'lost') {
        value = run.error_count;
        breach = run.error_count > (rule.threshold ?? 0);
        title = `job ${name} logged ${run.error_count} error${run.error_count === 1 ? '' : 's'}`;
        detail = `${run.error_count} ERROR/CRITICAL line${run.error_count === 1 ? '' : 's'} (rule: over ${rule.threshold ?? 0})`;
      }
    } else if (rule.kind === 'job_no_items') {
      if (run.items_count !== null && (run.outcome === 'succeeded' || run.outcome === 'finished_with_errors' || run.outcome === 'failed')) {
        value = run.items_count;
        breach = run.items_count <= (rule.threshold ?? 0);
        title = run.items_count === 0 ? `job ${name} scraped no items` : `job ${name} scraped only ${run.items_count} item${run.items_count === 1 ? '' : 's'}`;
        detail = `${run.items_count} items (rule: at most ${rule.threshold ?? 0})`;
      }
    }
    if (breach === true && !isOpen()) {
      out.fire.push({ ruleId: rule.id, subjectKey: key, title, link, value, threshold: rule.threshold, since: run.ended_at, detail, job: run.job });
    } else if (breach === false && isOpen()) {
      out.resolve.push({ ruleId: rule.id, subjectKey, value, detail: `run ${run.job} of ${name} ${rule.kind === 'job_failed' || rule.kind === 'job_finished_with_errors' ? 'succeeded' : `is fine (${value ?? ''})`}` });
    }
  }
  return out;
}

/** schedule_missed for one recorded schedule fire. */
export function evaluateScheduleFire(rules: readonly AlertRule[], f: ScheduleFire, open: OpenFirings): Evaluation {
  const out: Evaluation = { fire: [], resolve: [] };
  const subjectKey = `schedule:${f.schedule_id}`;
  const breach = f.outcome === 'missed' || f.outcome === 'skipped-overlap' || f.outcome === 'failed' ? true
    : f.outcome === 'dispatched' || f.outcome === 'missed-run' ? false : null;
  if (breach === null) return out;
  for (const rule of rules) {
    if (!rule.enabled || rule.kind !== 'schedule_missed' || !runInScope(rule, { project: f.project, spider: f.spider, node: null })) continue;
    const isOpen = open.get(rule.id)?.has(subjectKey) === true;
    const what = f.outcome === 'missed' ? 'missed a run' : f.outcome === 'skipped-overlap' ? 'skipped a run (the previous one was still active)' : 'could not start a run';
    if (breach && !isOpen) {
      out.fire.push({
        ruleId: rule.id, subjectKey, title: `schedule ${f.schedule_name} ${what}`, link: `/schedules/${f.schedule_id}`, value: null, threshold: null,
        since: f.scheduled_for, detail: `${f.project}/${f.spider}, occurrence ${new Date(f.scheduled_for).toISOString()}${f.detail ? `: ${f.detail}` : ''}`,
      });
    } else if (!breach && isOpen) {
      out.resolve.push({ ruleId: rule.id, subjectKey, value: null, detail: `schedule ${f.schedule_name} ran again at ${new Date(f.scheduled_for).toISOString()}` });
    }
  }
  return out;
}

/** A spider service's status as the reconciler left it (master/services). */
export interface ServiceStatus { id: number; name: string; project: string; spider: string; status: string; detail: string | null; since: number }

/** Fires while a service is crash-looping or its roll is paused on a crashing version; resolves when it runs again. */
export function evaluateServiceStatus(rules: readonly AlertRule[], s: ServiceStatus, open: OpenFirings): Evaluation {
  const out: Evaluation = { fire: [], resolve: [] };
  const subjectKey = `service:${s.id}`;
  const failing = s.status === 'crash-looping' || s.status.startsWith('roll paused');
  for (const rule of rules) {
    if (!rule.enabled || rule.kind !== 'service_failing' || !runInScope(rule, { project: s.project, spider: s.spider, node: null })) continue;
    const isOpen = open.get(rule.id)?.has(subjectKey) === true;
    if (failing && !isOpen) {
      out.fire.push({ ruleId: rule.id, subjectKey, title: `service ${s.name} ${s.status}`, link: '/services', value: null, threshold: null, since: s.since, detail: `${s.project}/${s.spider}: ${s.detail ?? s.status}` });
    } else if (!failing && isOpen) {
      out.resolve.push({ ruleId: rule.id, subjectKey, value: null, detail: `service ${s.name} is ${s.status}${s.detail ? ` (${s.detail})` : ''}` });
    }
  }
  return out;
}

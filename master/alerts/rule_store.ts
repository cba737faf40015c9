// Alert rules and their firings in the database (SQLite or PostgreSQL), and the validation of rule input from the API.
import type { SqlDb } from '../store/sql_db.ts';
import { nameProblem } from '../../common/names.ts';
import { bad } from '../http/input.ts';
import { ALERT_KINDS, NODE_KINDS, type AlertKind, type AlertRule, type Hit, type Recovery, type Scope } from './rule_engine.ts';

interface RuleRow {
  id: number; name: string; kind: AlertKind; threshold: number | null; duration_seconds: number; scope: Scope;
  scope_node: string | null; scope_project: string | null; scope_spider: string | null; recipients: string; enabled: number;
  created_at: number; updated_at: number;
}

export type RuleInput = Omit<AlertRule, 'id' | 'created_at' | 'updated_at'>;

const toRule = (r: RuleRow): AlertRule => ({ ...r, recipients: JSON.parse(r.recipients) as string[], enabled: r.enabled === 1 });

/** A plain address: local@domain, no display name, no spaces, no header-breaking characters. */
const EMAIL = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function emailProblem(v: unknown): string | null {
  if (typeof v !== 'string') return 'must be a string';
  if (v.length > 254) return 'is longer than 254 characters';
  if (!EMAIL.test(v)) return `'${v.slice(0, 100)}' is not an email address (user@example.com)`;
  return null;
}

export function parseRecipients(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter((x) => x !== '') : v;
  if (!Array.isArray(list)) throw bad(`'${field}' must be an array of email addresses`);
  if (list.length > 50) throw bad(`'${field}' may hold at most 50 addresses`);
  const out: string[] = [];
  for (const a of list) {
    const p = emailProblem(a);
    if (p) throw bad(`'${field}': ${p}`);
    if (!out.includes(a as string)) out.push(a as string);
  }
  return out;
}

const KIND_LABEL: Record<AlertKind, string> = {
  node_offline: 'Node offline', cpu: 'CPU', memory: 'Memory', disk: 'Disk', network_rx: 'Network receive', network_tx: 'Network send',
  job_failed: 'Job failed', job_finished_with_errors: 'Job finished with errors', job_errors: 'Job errors', job_no_items: 'Job scraped no items', job_too_long: 'Job too long', schedule_missed: 'Schedule missed',
  service_failing: 'Service crash-looping or roll paused',
};

/** What each kind takes, for the UI's form (GET /api/alerts/rules answers it as `kinds`). */
export const KIND_INFO: Record<AlertKind, { label: string; threshold: string | null; duration: boolean; scopes: Scope[] }> = {
  node_offline: { label: KIND_LABEL.node_offline, threshold: null, duration: true, scopes: ['all', 'node'] },
  cpu: { label: KIND_LABEL.cpu, threshold: 'percent (0-100): fires above it', duration: true, scopes: ['all', 'node'] },
  memory: { label: KIND_LABEL.memory, threshold: 'percent (0-100): fires above it', duration: true, scopes: ['all', 'node'] },
  disk: { label: KIND_LABEL.disk, threshold: 'percent (0-100) of the fullest mount: fires above it', duration: true, scopes: ['all', 'node'] },
  network_rx: { label: KIND_LABEL.network_rx, threshold: 'bytes per second: fires above it', duration: true, scopes: ['all', 'node'] },
  network_tx: { label: KIND_LABEL.network_tx, threshold: 'bytes per second: fires above it', duration: true, scopes: ['all', 'node'] },
  job_failed: { label: KIND_LABEL.job_failed, threshold: null, duration: false, scopes: ['all', 'node', 'project', 'spider'] },
  job_finished_with_errors: { label: KIND_LABEL.job_finished_with_errors, threshold: null, duration: false, scopes: ['all', 'node', 'project', 'spider'] },
  job_errors: { label: KIND_LABEL.job_errors, threshold: 'ERROR/CRITICAL lines: fires above this count', duration: false, scopes: ['all', 'node', 'project', 'spider'] },
  job_no_items: { label: KIND_LABEL.job_no_items, threshold: 'items: fires at or below this count (default 0)', duration: false, scopes: ['all', 'node', 'project', 'spider'] },
  job_too_long: { label: KIND_LABEL.job_too_long, threshold: 'seconds of running', duration: false, scopes: ['all', 'node', 'project', 'spider'] },
  schedule_missed: { label: KIND_LABEL.schedule_missed, threshold: null, duration: false, scopes: ['all', 'project', 'spider'] },
  service_failing: { label: KIND_LABEL.service_failing, threshold: null, duration: false, scopes: ['all', 'project', 'spider'] },
};

/**
 * Validates a rule body. With `current`, absent fields keep their current value (a partial edit);
 * null clears an optional one. Every refusal names the field and the rule it broke.
 */
export function parseRuleInput(body: Record<string, unknown>, current?: AlertRule): RuleInput {
  const known = new Set(['name', 'kind', 'threshold', 'duration_seconds', 'scope', 'node', 'project', 'spider', 'recipients', 'enabled']);
  for (const k of Object.keys(body)) if (!known.has(k)) throw bad(`unknown field '${k.slice(0, 50)}': a rule has ${[...known].join(', ')}`);
  const has = (k: string) => body[k] !== undefined;
  const kindRaw = has('kind') ? body.kind : current?.kind;
  if (kindRaw === undefined || kindRaw === null) throw bad(`'kind' is required: one of ${ALERT_KINDS.join(', ')}`);
  if (typeof kindRaw !== 'string' || !(ALERT_KINDS as readonly string[]).includes(kindRaw)) throw bad(`'kind' must be one of ${ALERT_KINDS.join(', ')}`);
  const kind = kindRaw as AlertKind;
  const info = KIND_INFO[kind];

  // threshold
  let threshold: number | null = has('threshold') ? (body.threshold as number | null) : current && current.kind === kind ? current.threshold : null;
  if (threshold !== null && (typeof threshold !== 'number' || !Number.isFinite(threshold))) throw bad(`'threshold' must be a number`);
  if (info.threshold === null) {
    if (threshold !== null && has('threshold')) throw bad(`'threshold' does not apply to ${kind}: leave it out`);
    threshold = null;
  } else if (kind === 'job_no_items') {
    threshold ??= 0;
  } else if (threshold === null) {
    throw bad(`'threshold' is required for ${kind}: ${info.threshold}`);
  }
  if (threshold !== null) {
    if (kind === 'cpu' || kind === 'memory' || kind === 'disk') {
      if (threshold < 0 || threshold > 100) throw bad(`'threshold' for ${kind} is a percentage: from 0 to 100`);
    } else if (kind === 'job_too_long') {
      if (threshold <= 0 || threshold > 366 * 86400) throw bad(`'threshold' for job_too_long is seconds: more than 0, at most a year`);
    } else if (threshold < 0) {
      throw bad(`'threshold' for ${kind} must be 0 or more`);
    } else if ((kind === 'job_errors' || kind === 'job_no_items') && !Number.isInteger(threshold)) {
      throw bad(`'threshold' for ${kind} must be a whole number`);
    }
  }

  // duration
  let duration = has('duration_seconds') ? body.duration_seconds : current && current.kind === kind ? current.duration_seconds : 0;
  if (duration === null) duration = 0;
  if (typeof duration !== 'number' || !Number.isInteger(duration) || duration < 0 || duration > 7 * 86400) throw bad(`'duration_seconds' must be a whole number of seconds from 0 to ${7 * 86400}`);
  if (!info.duration && duration !== 0) throw bad(`'duration_seconds' does not apply to ${kind} (it fires on each run or fire): use 0 or leave it out`);

  // scope
  const scopeRaw = has('scope') ? body.scope : current?.scope ?? 'all';
  if (typeof scopeRaw !== 'string' || !['all', 'node', 'project', 'spider'].includes(scopeRaw)) throw bad(`'scope' must be one of all, node, project, spider`);
  const scope = scopeRaw as Scope;
  if (!info.scopes.includes(scope)) throw bad(`'scope' ${scope} does not apply to ${kind}: use ${info.scopes.join(' or ')}`);
  const pick = (k: 'node' | 'project' | 'spider', cur: string | null | undefined): string | null => {
    const v = has(k) ? body[k] : cur;
    if (v === undefined || v === null || v === '') return null;
    if (typeof v !== 'string') throw bad(`'${k}' must be a string`);
    if (k === 'node') {
      if (!/^[A-Za-z0-9_.:@-]{1,200}$/.test(v)) throw bad(`'node' '${v.slice(0, 100)}' is not a node name (letters, digits and _ . : @ -)`);
    } else {
      const p = nameProblem(v);
      if (p) throw bad(`'${k}' ${p}`);
    }
    return v;
  };
  let scope_node: string | null = null;
  let scope_project: string | null = null;
  let scope_spider: string | null = null;
  if (scope === 'node') {
    scope_node = pick('node', current?.scope_node);
    if (!scope_node) throw bad(`scope 'node' needs 'node': the node's name`);
  } else if (scope === 'project' || scope === 'spider') {
    scope_project = pick('project', current?.scope_project);
    if (!scope_project) throw bad(`scope '${scope}' needs 'project'`);
    if (scope === 'spider') {
      scope_spider = pick('spider', current?.scope_spider);
      if (!scope_spider) throw bad(`scope 'spider' needs 'spider' (and 'project')`);
    }
  }

  const recipients = has('recipients') ? parseRecipients(body.recipients, 'recipients') : current?.recipients ?? [];
  const enabledRaw = has('enabled') ? body.enabled : current?.enabled ?? true;
  if (typeof enabledRaw !== 'boolean') throw bad(`'enabled' must be true or false`);
  let name = has('name') ? body.name : current?.name;
  if (name !== undefined && name !== null && (typeof name !== 'string' || name.length > 200)) throw bad(`'name' must be a string of at most 200 characters`);
  if (name === undefined || name === null || (name as string).trim() === '') name = defaultName(kind, threshold, duration, scope, scope_node ?? scope_project, scope_spider);
  return { name: (name as string).trim(), kind, threshold, duration_seconds: duration, scope, scope_node, scope_project, scope_spider, recipients, enabled: enabledRaw };
}

function defaultName(kind: AlertKind, threshold: number | null, duration: number, scope: Scope, a: string | null, b: string | null): string {
  const unit = kind === 'cpu' || kind === 'memory' || kind === 'disk' ? ' %' : kind === 'job_too_long' ? ' s' : kind.startsWith('network') ? ' B/s' : '';
  const cond = threshold === null || kind === 'job_no_items' ? '' : ` over ${threshold}${unit}`;
  const hold = duration > 0 && (NODE_KINDS as readonly string[]).includes(kind) ? ` for ${duration} s` : '';
  const where = scope === 'all' ? '' : scope === 'spider' ? ` (${a}/${b})` : ` (${a})`;
  return `${KIND_LABEL[kind]}${cond}${hold}${where}`;
}

export class RuleStore {
  constructor(private readonly db: SqlDb) {}

  private row(i: RuleInput) { return { ...i, recipients: JSON.stringify(i.recipients), enabled: i.enabled ? 1 : 0, now: Date.now() }; }

  /**
   * Every rule. Read each time (a small table), not cached: a rule edited through another master
   * holds at once.
   */
  async all(): Promise<AlertRule[]> { return (await this.db.all<RuleRow>(`SELECT * FROM alert_rules ORDER BY id`)).map(toRule); }
  async get(id: number): Promise<AlertRule | undefined> {
    const r = await this.db.get<RuleRow>(`SELECT * FROM alert_rules WHERE id = ?`, [id]);
    return r ? toRule(r) : undefined;
  }

  async create(i: RuleInput): Promise<AlertRule> {
    const id = await this.db.insert(`INSERT INTO alert_rules (name, kind, threshold, duration_seconds, scope, scope_node, scope_project, scope_spider, recipients, enabled, created_at, updated_at)
      VALUES (@name, @kind, @threshold, @duration_seconds, @scope, @scope_node, @scope_project, @scope_spider, @recipients, @enabled, @now, @now)`, this.row(i));
    return (await this.get(id))!;
  }

  async update(id: number, i: RuleInput): Promise<AlertRule | undefined> {
    await this.db.run(`UPDATE alert_rules SET name = @name, kind = @kind, threshold = @threshold, duration_seconds = @duration_seconds, scope = @scope,
      scope_node = @scope_node, scope_project = @scope_project, scope_spider = @scope_spider, recipients = @recipients,
      enabled = @enabled, updated_at = @now WHERE id = @id`, { ...this.row(i), id });
    return this.get(id);
  }

  async remove(id: number): Promise<boolean> { return (await this.db.run(`DELETE FROM alert_rules WHERE id = ?`, [id])) > 0; }
}

export interface FiringRow {
  id: number; rule_id: number; rule_name: string; kind: AlertKind; subject_key: string; title: string; link: string | null;
  state: 'firing' | 'resolved'; value: number | null; threshold: number | null; since: number; fired_at: number;
  resolved_at: number | null; detail: string | null; resolve_detail: string | null;
}

export interface NoticeRow {
  id: number; firing_id: number; event: 'fire' | 'resolve'; recipient: string; created_at: number; mail_id: number | null;
}

const RESOLVE = `UPDATE alert_firings SET state = 'resolved', resolved_at = @now, resolve_detail = @detail
  WHERE rule_id = @ruleId AND subject_key = @subjectKey AND state = 'firing' RETURNING id`;
const NOTICE = `INSERT INTO alert_notices (firing_id, event, recipient, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`;

/**
 * Firings and the mail notices they cause. A firing is opened at most once per (rule, subject) —
 * a partial unique index enforces it, on either engine and across masters — and its notices are
 * written in the same transaction, so a rule that stays firing never mails again and a recorded
 * firing never lacks its mail.
 */
export class FiringStore {
  constructor(private readonly db: SqlDb) {}

  async openMap(): Promise<Map<number, Set<string>>> {
    const m = new Map<number, Set<string>>();
    for (const r of await this.db.all<{ rule_id: number; subject_key: string }>(`SELECT rule_id, subject_key FROM alert_firings WHERE state = 'firing'`)) {
      let set = m.get(r.rule_id);
      if (!set) m.set(r.rule_id, (set = new Set()));
      set.add(r.subject_key);
    }
    return m;
  }

  /** Opens a firing and its notices; null when the same (rule, subject) is already firing. */
  fire(rule: AlertRule, hit: Hit, recipients: readonly string[], now = Date.now()): Promise<number | null> {
    return this.db.tx(async () => {
      const row = await this.db.get<{ id: number }>(`INSERT INTO alert_firings (rule_id, rule_name, kind, subject_key, title, link, state, value, threshold, since, fired_at, detail)
        VALUES (@ruleId, @ruleName, @kind, @subjectKey, @title, @link, 'firing', @value, @threshold, @since, @now, @detail)
        ON CONFLICT DO NOTHING RETURNING id`, { ...hit, ruleName: rule.name, kind: rule.kind, now });
      if (!row) return null;
      for (const to of recipients) await this.db.run(NOTICE, [row.id, 'fire', to, now]);
      return row.id;
    });
  }

  /** Closes a firing; its recovery notice goes to whoever was told it fired. */
  resolve(rec: Recovery, now = Date.now()): Promise<number | null> {
    return this.db.tx(async () => {
      const row = await this.db.get<{ id: number }>(RESOLVE, { ...rec, now });
      if (!row) return null;
      const told = await this.db.all<{ recipient: string }>(`SELECT DISTINCT recipient FROM alert_notices WHERE firing_id = ? AND event = 'fire'`, [row.id]);
      for (const { recipient } of told) await this.db.run(NOTICE, [row.id, 'resolve', recipient, now]);
      return row.id;
    });
  }

  /** Closes one firing without mail (another firing supersedes it). */
  async closeQuietly(rec: Recovery, now = Date.now()): Promise<void> { await this.db.get(RESOLVE, { ...rec, now }); }

  /** Closes a rule's firings without mail (the rule was disabled, deleted or changed kind). */
  async closeRule(ruleId: number, reason: string): Promise<void> {
    await this.db.run(`UPDATE alert_firings SET state = 'resolved', resolved_at = ?, resolve_detail = ? WHERE rule_id = ? AND state = 'firing'`, [Date.now(), reason, ruleId]);
  }

  get(id: number): Promise<FiringRow | undefined> { return this.db.get<FiringRow>(`SELECT * FROM alert_firings WHERE id = ?`, [id]); }

  async counts(): Promise<Record<string, number>> {
    const out: Record<string, number> = { firing: 0, resolved: 0 };
    for (const r of await this.db.all<{ state: string; n: number }>(`SELECT state, COUNT(*) AS n FROM alert_firings GROUP BY state`)) out[r.state] = Number(r.n);
    return out;
  }

  async history(f: { state?: string; rule?: number; limit: number; offset: number }): Promise<{ firings: FiringRow[]; total: number }> {
    const where: string[] = [];
    const params: Array<string | number> = [];
    if (f.state !== undefined) { where.push('state = ?'); params.push(f.state); }
    if (f.rule !== undefined) { where.push('rule_id = ?'); params.push(f.rule); }
    const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const firings = await this.db.all<FiringRow>(`SELECT * FROM alert_firings ${w} ORDER BY id DESC LIMIT ? OFFSET ?`, [...params, f.limit, f.offset]);
    const total = Number((await this.db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM alert_firings ${w}`, params))!.n);
    return { firings, total };
  }

  waitingRecipients(): Promise<Array<{ recipient: string; oldest: number }>> {
    return this.db.all(`SELECT recipient, MIN(created_at) AS oldest FROM alert_notices WHERE mail_id IS NULL GROUP BY recipient`);
  }
  waiting(recipient: string): Promise<NoticeRow[]> {
    return this.db.all<NoticeRow>(`SELECT * FROM alert_notices WHERE mail_id IS NULL AND recipient = ? ORDER BY id`, [recipient]);
  }
  async attach(noticeId: number, mailId: number): Promise<boolean> {
    return (await this.db.run(`UPDATE alert_notices SET mail_id = ? WHERE id = ? AND mail_id IS NULL`, [mailId, noticeId])) === 1;
  }
  transaction<T>(fn: () => Promise<T>): Promise<T> { return this.db.tx(fn); }
}

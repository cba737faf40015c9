// Alerts, wired together: evaluation rounds and run/schedule events -> firings (the database) -> notices
// grouped per recipient -> the outbox -> SMTP. Also the SMTP settings, the default rules and the
// metric roll-ups' timer. Rounds, events and grouping take turns (one at a time), as they did
// when every store call was synchronous: a fire cursor or a notice is never handled twice.
import { ifLeader, type Fence } from '../cluster/fence.ts';
import type { SqlDb } from '../store/sql_db.ts';
import type { NodeMetrics, SpiderError } from '../../common/types.ts';
import type { NodeRegistry, NodeRow } from '../nodes/node_registry.ts';
import type { RunRow, RunStore } from '../runs/run_store.ts';
import { bad } from '../http/input.ts';
import { MetricHistory } from '../metrics/metric_history.ts';
import { SettingsStore } from '../settings_store.ts';
import { ScheduleStore } from '../schedules/schedule_store.ts';
import { composeAlertMail, sendMail, SmtpFailure, verifySmtp, type NoticeForMail, type SmtpCheck, type SmtpSecure, type SmtpSettings } from './mailer.ts';
import { Outbox, OutboxSender } from './outbox.ts';
import { emailProblem, FiringStore, parseRecipients, RuleStore, type RuleInput } from './rule_store.ts';
import { evaluateRun, evaluateScheduleFire, evaluateServiceStatus, RuleEngine, type AlertRule, type Evaluation, type NodeSnapshot, type RunFacts, type ScheduleFire, type ServiceStatus } from './rule_engine.ts';
import { retryPhrase } from '../runs/retry_backoff.ts';

export interface AlertServiceOptions {
  /** SMTP settings from the flags; settings saved through the API replace them. */
  flags: SmtpSettings;
  publicUrl: () => string;
  /** At most one mail per recipient per this many ms. */
  groupMs: number;
  /** A notice waits this long for others to join its mail. */
  groupWaitMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  /** Node rules are evaluated this often (the heartbeat interval). */
  evalIntervalMs: number;
  rawRetentionMs: number;
}

/** Fetches the error lines of a run from its node (null when the node cannot tell). */
export type ErrorLines = (run: RunRow) => Promise<SpiderError[] | null>;

const SMTP_KEY = 'alert_smtp';
const DEFAULTS_KEY = 'alert_default_rules_created';
const FIRE_CURSOR_KEY = 'alerts_fire_cursor';
const SENT_KEPT_MS = 30 * 24 * 3600_000;

/** A node as the rules see it, from its registry row. */
export function snapshotOf(n: NodeRow): NodeSnapshot {
  const m = n.metrics ? (JSON.parse(n.metrics) as NodeMetrics) : null;
  let disk: NodeSnapshot['disk'] = null;
  for (const d of m?.disks ?? []) if (!disk || d.used_percent > disk.percent) disk = { mount: d.mount, percent: d.used_percent };
  return {
    name: n.name, status: n.status, statusSince: n.status_since, cpu: m?.cpu_percent ?? null, mem: m?.memory.used_percent ?? null, disk,
    rx: m?.network.rx_bytes_per_sec ?? null, tx: m?.network.tx_bytes_per_sec ?? null,
  };
}

export function formatErrorLines(errors: readonly SpiderError[], maxChars = 4000): string {
  const lines: string[] = [];
  for (const e of errors) {
    lines.push(`${e.time} [${e.logger}] ${e.level}: ${e.message}`);
    if (e.traceback) lines.push(...e.traceback.split('\n').filter((l) => l.trim() !== '').slice(0, 12).map((l) => `    ${l}`));
  }
  let text = lines.join('\n');
  if (text.length > maxChars) text = text.slice(0, maxChars) + '\n…';
  return text;
}

export class AlertService {
  readonly rules: RuleStore;
  readonly firings: FiringStore;
  readonly outbox: Outbox;
  readonly sender: OutboxSender;
  readonly history: MetricHistory;
  readonly engine = new RuleEngine();
  private readonly settings: SettingsStore;
  /** The SMTP settings saved in the database (undefined: none), as last read. */
  private savedSmtp: string | undefined;
  private maintaining: Promise<void> | null = null;
  private readonly fires: ScheduleStore;
  private timers: NodeJS.Timeout[] = [];
  /** The last schedule fire looked at (null until prepare()). */
  private fireCursor: number | null = null;
  private readonly pending = new Set<Promise<void>>();
  /** A leader duty: idle until start() (a standby's events and kicks do nothing). */
  private stopped = true;
  private check: SmtpCheck | null = null;
  private checkRound = 0;
  /** The end of the last queued turn (see the file comment). */
  private turn: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly sql: SqlDb,
    private readonly nodes: NodeRegistry,
    private readonly runs: RunStore,
    private readonly errorLines: ErrorLines,
    private readonly opts: AlertServiceOptions,
  ) {
    this.rules = new RuleStore(sql);
    this.firings = new FiringStore(sql);
    this.outbox = new Outbox(sql);
    this.history = new MetricHistory(sql, opts.rawRetentionMs);
    this.sender = new OutboxSender(this.outbox, () => this.smtp(), { retryMinMs: opts.retryMinMs, retryMaxMs: opts.retryMaxMs });
    // Schedule fires recorded from now on are looked at (including the missed ones the scheduler
    // records when it starts after a downtime).
    // The cursor is kept in settings, so fires recorded just before a crash are still looked at.
    this.settings = new SettingsStore(sql);
    this.fires = new ScheduleStore(sql);
  }

  /** Runs `fn` after every turn queued before it (a failed turn does not stop the next). */
  private inTurn<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.turn.then(fn, fn);
    this.turn = run.catch(() => undefined);
    return run;
  }

  /** Runs that ended in the last day but were never evaluated (the master stopped in between). */
  private async uncheckedRuns(): Promise<RunRow[]> { return await this.runs.endedUnchecked(Date.now() - 24 * 3600_000); }

  /**
   * Before the scheduler starts: where the fire cursor begins on a first start, so the missed
   * occurrences the scheduler records at its start are looked at.
   */
  async prepare(): Promise<void> {
    if (this.fireCursor !== null) return;
    const saved = await this.settings.get(FIRE_CURSOR_KEY);
    this.fireCursor ??= saved !== undefined ? Number(saved) : await this.fires.lastFireId();
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.timers = [];
    await this.loadSmtp();
    void this.checkSmtp();
    await this.prepare();
    const requeued = await this.outbox.recoverInFlight();
    if (requeued) console.log(`[spiderplane-master] ${requeued} alert mail(s) were being sent when the master stopped: queued again`);
    await this.ensureDefaultRules();
    for (const run of await this.uncheckedRuns()) this.onRunEnded(run);
    void this.maintainHistory();
    this.sender.start();
    // A timer's round is skipped while the previous one still runs (a slow database).
    const every = (ms: number, fn: () => Promise<unknown>) => {
      let busy = false;
      const t = setInterval(() => {
        if (busy) return;
        busy = true;
        fn().catch((e) => console.error('[spiderplane-master] alerts:', e)).finally(() => { busy = false; });
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.opts.evalIntervalMs, async () => {
      await this.loadSmtp();
      await this.evaluateRound();
    });
    every(Math.max(50, Math.min(1000, this.opts.groupWaitMs / 2 || 250, this.opts.groupMs / 2 || 250)), () => this.group());
    every(60_000, async () => { void this.maintainHistory(); await this.outbox.pruneSent(Date.now() - SENT_KEPT_MS); });
  }

  /** Metric roll-ups and expiry, in small batches between which the event loop runs. */
  private maintainHistory(): Promise<void> {
    if (this.maintaining) return this.maintaining; // a long expiry backlog: one pass at a time
    const p = this.history.maintain().catch((e) => console.error('[spiderplane-master] metric history:', e));
    this.pending.add(p);
    this.maintaining = p.finally(() => { this.pending.delete(p); this.maintaining = null; });
    return this.maintaining;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.history.halt();
    await Promise.allSettled([...this.pending]);
    await this.turn;
    await this.sender.stop();
  }

  // ---- SMTP settings ----

  /** Re-read every evaluation round, so SMTP settings saved through another master count here too. */
  private async loadSmtp(): Promise<void> {
    this.savedSmtp = await this.settings.get(SMTP_KEY);
  }

  /** The effective settings: saved ones (Settings page / API), else the flags. */
  smtp(): SmtpSettings {
    const saved = this.savedSmtp;
    return saved !== undefined ? (JSON.parse(saved) as SmtpSettings) : this.opts.flags;
  }

  /** The last check of the effective SMTP settings (null when none is configured). */
  smtpCheck(): SmtpCheck | null { return this.check; }

  /**
   * Checks the effective settings against the server (at start and after every save), without
   * blocking anything: the result goes to the log and to the alerts and settings pages.
   */
  checkSmtp(): Promise<void> {
    const s = this.smtp();
    const round = ++this.checkRound;
    if (s.host === null) {
      this.check = null;
      return Promise.resolve();
    }
    this.check = { ok: null, message: 'checking the connection…', at: Date.now() };
    const done = verifySmtp(s).then((c) => {
      // Newer settings were saved meanwhile. (Not a leader duty: a standby's Settings page shows its check too.)
      if (round !== this.checkRound) return;
      this.check = c;
      if (c.ok) console.log(`[spiderplane-master] SMTP check: ${c.message}`);
      else console.error(`[spiderplane-master] SMTP check FAILED: ${c.message} — alert mails will not be delivered until the SMTP settings are fixed`);
    });
    return done; // not awaited by stop(): a server that never answers must not hold the shutdown
  }

  smtpSource(): 'flags' | 'settings' {
    return this.savedSmtp !== undefined ? 'settings' : 'flags';
  }

  /** Validates and saves an edit of the settings: absent fields keep their value; password null or '' clears it. */
  async saveSmtp(body: Record<string, unknown>): Promise<SmtpSettings> {
    const known = ['host', 'port', 'secure', 'user', 'password', 'from', 'to'];
    for (const k of Object.keys(body)) if (!known.includes(k)) throw bad(`unknown field '${k.slice(0, 50)}': SMTP settings have ${known.join(', ')}`);
    const cur = this.smtp();
    const has = (k: string) => body[k] !== undefined;
    const str = (k: string, max: number): string | null => {
      const v = body[k];
      if (v === null || v === '') return null;
      if (typeof v !== 'string') throw bad(`'${k}' must be a string`);
      if (v.length > max) throw bad(`'${k}' must be at most ${max} characters`);
      if (/[\r\n\0]/.test(v)) throw bad(`'${k}' must be on one line`);
      return v;
    };
    const next: SmtpSettings = { ...cur };
    if (has('host')) {
      next.host = str('host', 253);
      if (next.host !== null && !/^[A-Za-z0-9.-]+$|^\[?[0-9A-Fa-f:.]+\]?$/.test(next.host)) throw bad(`'host' must be a host name or IP address`);
    }
    if (has('port')) {
      const p = body.port;
      if (p === null || p === '') next.port = null;
      else if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) throw bad(`'port' must be a whole number from 1 to 65535`);
      else next.port = p;
    }
    if (has('secure')) {
      if (typeof body.secure !== 'string' || !['none', 'starttls', 'tls'].includes(body.secure)) throw bad(`'secure' must be one of none, starttls, tls`);
      next.secure = body.secure as SmtpSecure;
    }
    if (has('user')) next.user = str('user', 200);
    if (has('password')) next.password = str('password', 500);
    if (has('from')) {
      next.from = str('from', 300);
      if (next.from !== null) {
        const m = /^(?:[^<>"]{0,100}<([^<>]+)>|([^<>\s]+))$/.exec(next.from.trim());
        const addr = m?.[1] ?? m?.[2];
        if (!addr || emailProblem(addr)) throw bad(`'from' must be an address: ops@example.com or Spiderplane <ops@example.com>`);
      }
    }
    if (has('to')) next.to = parseRecipients(body.to, 'to');
    await this.settings.set(SMTP_KEY, JSON.stringify(next));
    this.savedSmtp = JSON.stringify(next);
    await this.ensureDefaultRules();
    this.sender.kick();
    void this.checkSmtp();
    return next;
  }

  /** Sends a test mail now (not through the outbox) and tells what the server said. */
  async testMail(to: string[]): Promise<{ ok: boolean; to: string[]; response?: string; error?: string; code?: number | null }> {
    const s = this.smtp();
    if (s.host === null) throw bad('SMTP is not configured: save a host first');
    const list = to.length ? to : s.to;
    if (!list.length) throw bad(`give 'to', or save default recipients first`);
    const now = new Date();
    try {
      const response = await sendMail(s, {
        to: list.join(', '), subject: '[spiderplane] test mail',
        text: `This is a test mail from spiderplane (${this.opts.publicUrl()}), sent ${now.toISOString()}.\nAlert mails will look like this one's sender and subject.\n`,
        html: `<p>This is a test mail from spiderplane (${this.opts.publicUrl().replace(/[&<>"]/g, '')}), sent ${now.toISOString()}.</p>`,
        messageId: `<test.${now.getTime()}@spiderplane>`, headers: {},
      });
      return { ok: true, to: list, response };
    } catch (e) {
      const err = e as SmtpFailure;
      return { ok: false, to: list, error: err.message, code: err.responseCode ?? null };
    }
  }

  /** With SMTP and recipients set, the rules a user expects exist from the start (once: later edits stay). */
  async ensureDefaultRules(): Promise<void> {
    const s = this.smtp();
    if (s.host === null || s.to.length === 0) return;
    // Claimed first: of masters saving at once, one creates them.
    await this.sql.tx(async () => {
      if (!(await this.settings.setIfAbsent(DEFAULTS_KEY, String(Date.now())))) return;
      const base = { recipients: [], enabled: true, scope: 'all' as const, scope_node: null, scope_project: null, scope_spider: null };
      // A kind the user already watches cluster-wide gets no second (duplicate) rule.
      const watched = new Set((await this.rules.all()).filter((r) => r.scope === 'all').map((r) => r.kind));
      if (!watched.has('node_offline')) await this.rules.create({ ...base, name: 'Node offline', kind: 'node_offline', threshold: null, duration_seconds: 0 });
      if (!watched.has('job_failed')) await this.rules.create({ ...base, name: 'Job failed', kind: 'job_failed', threshold: null, duration_seconds: 0 });
      if (!watched.has('disk')) await this.rules.create({ ...base, name: 'Disk over 90 %', kind: 'disk', threshold: 90, duration_seconds: 60 });
    });
  }

  // ---- rules ----

  async createRule(i: RuleInput): Promise<AlertRule> {
    const r = await this.rules.create(i);
    this.evaluateSoon();
    return r;
  }

  async updateRule(id: number, i: RuleInput): Promise<AlertRule | undefined> {
    const before = await this.rules.get(id);
    if (!before) return undefined;
    const after = await this.rules.update(id, i);
    if (!after) return undefined; // deleted meanwhile
    // A rule that stops watching, or now watches something else, closes its firings without mail.
    if (!after.enabled && before.enabled) await this.firings.closeRule(id, 'the rule was disabled');
    else if (after.kind !== before.kind) await this.firings.closeRule(id, 'the rule changed kind');
    this.evaluateSoon();
    return after;
  }

  async removeRule(id: number): Promise<boolean> {
    const ok = await this.rules.remove(id);
    if (ok) await this.firings.closeRule(id, 'the rule was deleted');
    return ok;
  }

  private evaluateSoon(): void {
    const t = setTimeout(() => { this.evaluateRound().catch((e) => console.error('[spiderplane-master] alerts:', e)); }, 0);
    t.unref();
  }

  // ---- evaluation ----

  /** Recipients of a rule's mails: its own, else the default ones. */
  private recipients(rule: AlertRule): string[] {
    return rule.recipients.length ? rule.recipients : this.smtp().to;
  }

  /** Firing and resolving are the leader's writes (master/cluster/fence.ts); the outbox's claims too. */
  get fence(): Fence { return this.sender.fence; }
  set fence(f: Fence) { this.sender.fence = f; }

  private async apply(ev: Evaluation, now = Date.now()): Promise<void> {
    if (!ev.fire.length && !ev.resolve.length) return;
    await ifLeader(this.fence, () => this.applyNow(ev, now));
  }

  private async applyNow(ev: Evaluation, now: number): Promise<void> {
    const rules = new Map((await this.rules.all()).map((r) => [r.id, r]));
    for (const hit of ev.fire) {
      const rule = rules.get(hit.ruleId);
      if (rule) await this.firings.fire(rule, hit, this.recipients(rule), now);
    }
    for (const rec of ev.resolve) {
      if (rec.silent) await this.firings.closeQuietly(rec, now);
      else await this.firings.resolve(rec, now);
    }
  }

  /** One round: node rules, long-running jobs, schedule fires. */
  evaluateRound(now = Date.now()): Promise<void> {
    return this.inTurn(async () => {
      if (this.stopped) return;
      const rules = await this.rules.all();
      if (!rules.some((r) => r.enabled)) { await this.skipScheduleFires(); return; }
      const open = await this.firings.openMap();
      await this.apply(this.engine.evaluateNodes(rules, (await this.nodes.all()).map(snapshotOf), open, now), now);
      if (rules.some((r) => r.enabled && r.kind === 'job_too_long')) {
        const running = (await this.runs.runningList()).map((r) => ({ job: r.job, project: r.project, spider: r.spider, node: r.node, started_at: r.started_at ?? r.created_at }));
        await this.apply(this.engine.evaluateRunning(rules, running, await this.firings.openMap(), now), now);
      }
      await this.scheduleFires(rules);
    });
  }

  private async newFires(): Promise<ScheduleFire[]> {
    await this.prepare();
    const rows: Array<ScheduleFire & { id: number }> = await this.fires.firesAfter(this.fireCursor!, 1000);
    if (rows.length) {
      this.fireCursor = rows[rows.length - 1]!.id;
      await this.settings.set(FIRE_CURSOR_KEY, String(this.fireCursor));
    }
    return rows;
  }

  private async skipScheduleFires(): Promise<void> { await this.newFires(); }

  private async scheduleFires(rules: AlertRule[]): Promise<void> {
    for (const f of await this.newFires()) await this.apply(evaluateScheduleFire(rules, f, await this.firings.openMap()));
  }

  /** A spider service changed status (master/services/reconciler.ts): the service_failing rules look at it. */
  onServiceStatus(s: ServiceStatus): void {
    if (this.stopped) return;
    const p = this.inTurn(async () => {
      await this.apply(evaluateServiceStatus(await this.rules.all(), s, await this.firings.openMap()));
    }).then(() => this.group()).catch((e) => console.error('[spiderplane-master] alerts: service status', s.name, e));
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** A run ended (finished, or lost with its node): the job rules look at it. */
  onRunEnded(run: RunRow): void {
    if (this.stopped) return;
    const p = this.handleRun(run).catch((e) => console.error('[spiderplane-master] alerts: evaluating run', run.job, e));
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  private async handleRun(run: RunRow): Promise<void> {
    const rules = await this.rules.all();
    const ev = evaluateRun(rules, {
      job: run.job, project: run.project, spider: run.spider, node: run.node, outcome: run.outcome, exit_code: run.exit_code,
      items_count: run.items_count, error_count: run.error_count, note: run.note, ended_at: run.ended_at ?? Date.now(), retry: await this.retryFacts(run),
    }, await this.firings.openMap());
    if (ev.fire.some((h) => h.job !== undefined) && run.outcome !== 'lost') {
      const errors = await this.errorLines(run).catch(() => null);
      if (errors && errors.length) {
        const text = formatErrorLines(errors);
        for (const h of ev.fire) h.detail = `${h.detail ?? ''}\n\nError lines of job ${run.job}:\n${text}`;
      }
    }
    await this.inTurn(() => this.sql.tx(async () => {
      await this.apply(ev);
      await this.runs.markAlertChecked(run.id, Date.now());
    }));
    await this.group();
  }

  /** What the alert says about a failed run's retries: "retry 1 of 3 in 60 s" or "gave up after 3 retries". */
  private async retryFacts(run: RunRow): Promise<RunFacts['retry']> {
    const phrase = retryPhrase(run);
    if (phrase === null) return null;
    let root = run;
    for (let i = 0; i < 100 && root.retry_of !== null; i++) {
      const prev = await this.runs.get(root.retry_of);
      if (!prev) break;
      root = prev;
    }
    return { phrase, pending: phrase.startsWith('retry '), chain: root.job };
  }

  // ---- grouping ----

  /**
   * Turns waiting notices into mails: one mail per recipient carries every notice waiting for
   * them, once the oldest has waited groupWait and the recipient's previous mail is groupMs old.
   * Notice -> mail is one transaction with the outbox insert: a notice is mailed exactly once.
   */
  group(now = Date.now()): Promise<void> {
    return this.inTurn(async () => {
      if (this.stopped) return;
      let queued = false;
      for (const { recipient, oldest } of await this.firings.waitingRecipients()) {
        if (now - oldest < this.opts.groupWaitMs) continue;
        const last = await this.outbox.lastMailTo(recipient);
        if (last !== null && now - last < this.opts.groupMs) continue;
        await this.firings.transaction(async () => {
          const notices = await this.firings.waiting(recipient);
          const parts: NoticeForMail[] = [];
          for (const n of notices) {
            const firing = await this.firings.get(n.firing_id);
            if (firing) parts.push({ event: n.event, firing });
          }
          if (!parts.length) return;
          const mail = composeAlertMail(parts, this.opts.publicUrl(), now);
          const id = await this.outbox.enqueue({ to: recipient, ...mail }, now);
          for (const n of notices) await this.firings.attach(n.id, id);
          queued = true;
        });
      }
      if (queued) this.sender.kick();
    });
  }
}

/** Error lines of a run from its node's /errors.json (spiderplane slaves only). */
export function errorLinesVia(nodes: NodeRegistry, clientFor: (n: NodeRow) => { raw: (path: string, timeoutMs?: number) => Promise<Response> }): ErrorLines {
  return async (run) => {
    const node = run.node_id === null ? undefined : await nodes.byId(run.node_id);
    if (!node || !node.extensions) return null;
    const res = await clientFor(node).raw(`/errors.json?job=${encodeURIComponent(run.job)}&limit=20`, 5000);
    if (!res.ok) return null;
    const body = (await res.json()) as { status?: string; errors?: SpiderError[] };
    return body.status === 'ok' ? body.errors ?? [] : null;
  };
}

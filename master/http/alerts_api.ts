// The alerts API (/api/alerts/...), metric history for charts, and Prometheus /metrics.
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { Master } from '../master.ts';
import { KIND_INFO, parseRecipients, parseRuleInput, type FiringRow } from '../alerts/rule_store.ts';
import { smtpView } from '../alerts/mailer.ts';
import type { MailRow } from '../alerts/outbox.ts';
import { RANGES, type Range } from '../metrics/metric_history.ts';
import { prometheusText } from '../metrics/prometheus.ts';
import type { NodeMetrics } from '../../common/types.ts';
import { requireRole } from './auth.ts';
import { bad, HttpError, intQuery, readJson, strQuery } from './input.ts';
import { jsonRoute } from './json_route.ts';
import { eventLoopLag } from '../../common/event_loop_lag.ts';

export function firingView(f: FiringRow) {
  return {
    id: f.id, rule_id: f.rule_id, rule_name: f.rule_name, kind: f.kind, subject: f.subject_key, title: f.title, link: f.link, state: f.state,
    value: f.value, threshold: f.threshold, since: f.since, fired_at: f.fired_at, resolved_at: f.resolved_at, detail: f.detail, resolve_detail: f.resolve_detail,
  };
}

export function mailView(m: MailRow) {
  return {
    id: m.id, message_id: m.message_id, to: m.recipient, subject: m.subject, state: m.state, attempts: m.attempts, next_attempt_at: m.next_attempt_at,
    last_error: m.last_error, smtp_response: m.smtp_response, created_at: m.created_at, sent_at: m.sent_at,
  };
}

function rangeQuery(ctx: Context): Range {
  const r = strQuery(ctx, 'range') ?? '1h';
  if (!Object.hasOwn(RANGES, r)) throw bad(`query 'range' must be one of ${Object.keys(RANGES).join(', ')}`);
  return r as Range;
}

function idParam(ctx: Context, what: string): number {
  const id = Number(ctx.params.id);
  if (!Number.isSafeInteger(id) || id <= 0) throw new HttpError(404, `${what} '${String(ctx.params.id).slice(0, 50)}' not found`);
  return id;
}

export function mountAlertsApi(router: Router, m: Master): void {
  const a = m.alerts;
  const r = (method: 'get' | 'post' | 'put' | 'delete', path: string, h: (ctx: Context) => Promise<unknown> | unknown) => router[method](path, jsonRoute(h));
  const findRule = async (ctx: Context) => {
    const rule = await a.rules.get(idParam(ctx, 'rule'));
    if (!rule) throw new HttpError(404, `rule '${ctx.params.id}' not found`);
    return rule;
  };

  // ---- rules ----
  r('get', '/api/alerts/rules', async (ctx) => {
    requireRole(ctx, 'viewer');
    const open = await a.firings.openMap();
    return { rules: (await a.rules.all()).map((x) => ({ ...x, firing: open.get(x.id)?.size ?? 0 })), kinds: KIND_INFO, default_recipients: a.smtp().to };
  });
  r('post', '/api/alerts/rules', async (ctx) => {
    requireRole(ctx, 'operator');
    const rule = await a.createRule(parseRuleInput(await readJson(ctx)));
    ctx.status = 201;
    return { rule };
  });
  r('get', '/api/alerts/rules/:id', async (ctx) => {
    requireRole(ctx, 'viewer');
    const rule = await findRule(ctx);
    return { rule, firings: (await a.firings.history({ rule: rule.id, limit: 50, offset: 0 })).firings.map(firingView) };
  });
  r('put', '/api/alerts/rules/:id', async (ctx) => {
    requireRole(ctx, 'operator');
    const rule = await findRule(ctx);
    return { rule: await a.updateRule(rule.id, parseRuleInput(await readJson(ctx), rule)) };
  });
  r('post', '/api/alerts/rules/:id/enable', async (ctx) => {
    requireRole(ctx, 'operator');
    const rule = await findRule(ctx);
    return { rule: await a.updateRule(rule.id, parseRuleInput({ enabled: true }, rule)) };
  });
  r('post', '/api/alerts/rules/:id/disable', async (ctx) => {
    requireRole(ctx, 'operator');
    const rule = await findRule(ctx);
    return { rule: await a.updateRule(rule.id, parseRuleInput({ enabled: false }, rule)) };
  });
  r('delete', '/api/alerts/rules/:id', async (ctx) => {
    requireRole(ctx, 'operator');
    if (!(await a.removeRule((await findRule(ctx)).id))) throw new HttpError(404, `rule '${ctx.params.id}' not found`);
    return { ok: true };
  });

  // ---- history ----
  r('get', '/api/alerts/firings', async (ctx) => {
    requireRole(ctx, 'viewer');
    const state = strQuery(ctx, 'state');
    if (state !== undefined && state !== 'firing' && state !== 'resolved') throw bad(`query 'state' must be firing or resolved`);
    const rule = strQuery(ctx, 'rule');
    if (rule !== undefined && !/^\d{1,15}$/.test(rule)) throw bad(`query 'rule' must be a rule id`);
    const { firings, total } = await a.firings.history({ state, rule: rule === undefined ? undefined : Number(rule), limit: intQuery(ctx, 'limit', 50, 1000), offset: intQuery(ctx, 'offset', 0, Number.MAX_SAFE_INTEGER) });
    return { firings: firings.map(firingView), total, counts: await a.firings.counts() };
  });
  r('get', '/api/alerts/outbox', async (ctx) => {
    requireRole(ctx, 'viewer');
    const state = strQuery(ctx, 'state');
    if (state !== undefined && !['queued', 'sending', 'sent', 'failed'].includes(state)) throw bad(`query 'state' must be one of queued, sending, sent, failed`);
    return { mails: (await a.outbox.list({ state, limit: intQuery(ctx, 'limit', 50, 1000), offset: intQuery(ctx, 'offset', 0, Number.MAX_SAFE_INTEGER) })).map(mailView), counts: await a.outbox.counts() };
  });
  r('post', '/api/alerts/outbox/:id/retry', async (ctx) => {
    requireRole(ctx, 'admin');
    const id = idParam(ctx, 'mail');
    if (!(await a.outbox.get(id))) throw new HttpError(404, `mail '${id}' not found`);
    if (!(await a.outbox.retryFailed(id))) throw bad(`mail ${id} is not failed: only failed mails are retried by hand`);
    a.sender.kick();
    const mail = await a.outbox.get(id);
    if (!mail) throw new HttpError(404, `mail '${id}' not found`);
    return { mail: mailView(mail) };
  });

  // ---- SMTP settings ----
  r('get', '/api/alerts/smtp', (ctx) => {
    requireRole(ctx, 'viewer');
    return { smtp: smtpView(a.smtp(), a.smtpSource(), a.smtpCheck()) };
  });
  r('put', '/api/alerts/smtp', async (ctx) => {
    requireRole(ctx, 'admin');
    const saved = await a.saveSmtp(await readJson(ctx));
    return { smtp: smtpView(saved, 'settings', a.smtpCheck()) };
  });
  r('post', '/api/alerts/smtp/test', async (ctx) => {
    requireRole(ctx, 'admin');
    const body = await readJson(ctx);
    return a.testMail(parseRecipients(body.to, 'to'));
  });

  // ---- metric history ----
  // What a chart needs besides its points: the time window it spans (epoch ms, so one point is not
  // stretched over years) and how often nodes report (so an empty chart can say when data comes).
  const chartFrame = (range: Range, to: number) => ({ from: to - RANGES[range], to, sample_every_seconds: m.config.heartbeatIntervalMs / 1000 });
  r('get', '/api/nodes/:name/metrics', async (ctx) => {
    requireRole(ctx, 'viewer');
    const node = await m.nodes.byName(ctx.params.name!);
    if (!node) throw new HttpError(404, `node '${ctx.params.name}' not found`);
    const range = rangeQuery(ctx);
    const to = Date.now();
    return { node: node.name, range, ...chartFrame(range, to), ...await a.history.nodeSeries(node.id, range, to) };
  });
  r('get', '/api/metrics/cluster', async (ctx) => {
    requireRole(ctx, 'viewer');
    const range = rangeQuery(ctx);
    const to = Date.now();
    return { range, ...chartFrame(range, to), ...await a.history.clusterSeries(range, to) };
  });

  // ---- Prometheus ----
  router.get('/metrics', async (ctx) => {
    try {
      requireRole(ctx, 'viewer');
    } catch (e) {
      ctx.status = (e as HttpError).status;
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = `${(e as Error).message}\n`;
      return;
    }
    ctx.set('Content-Type', 'text/plain; version=0.0.4; charset=utf-8');
    const lead = await m.leadershipStatus();
    ctx.body = prometheusText({
      leadership: { leader: lead.leader, epoch: lead.epoch, masters: lead.masters.length },
      nodes: (await m.nodes.all()).map((n) => ({
        name: n.name, status: n.status, draining: n.draining === 1, running: n.running, pending: n.pending, max_proc: n.max_proc, last_ok_at: n.last_ok_at,
        metrics: n.metrics ? (JSON.parse(n.metrics) as NodeMetrics) : null,
      })),
      runs: await m.runs.counts(), alerts: await a.firings.counts(), outbox: await a.outbox.counts(), now: Date.now(), eventLoopLag: eventLoopLag().figures(),
    });
  });
}

import type { Params } from '../../../common/http/request_params.ts';
import { KIND_INFO, parseRecipients, parseRuleInput, type RuleInput } from '../../alerts/rule_store.ts';
import { smtpView } from '../../alerts/mailer.ts';
import { firingView, mailView } from '../../http/alerts_api.ts';
import { HttpError } from '../../http/input.ts';
import { action, baseQuery, page, pageOf, type PageContext } from '../page_kit.ts';
import { optional } from '../forms.ts';
import { redirect, render } from '../render.ts';

/** What a rule's threshold counts, for the list. */
const UNITS: Record<string, string> = {
  cpu: ' %', memory: ' %', disk: ' %', network_rx: ' B/s', network_tx: ' B/s', job_errors: ' errors', job_no_items: ' items', job_too_long: ' s',
};

/** Whether two rules watch the same thing the same way (recipients and name aside). */
function sameWatch(r: RuleInput, i: RuleInput): boolean {
  return r.kind === i.kind && r.scope === i.scope && r.scope_node === i.scope_node && r.scope_project === i.scope_project
    && r.scope_spider === i.scope_spider && r.threshold === i.threshold && r.duration_seconds === i.duration_seconds;
}

/** Alert rules (list, create, edit, enable), alert history with the mail outbox, SMTP settings. */
export function mountAlertPages(pc: PageContext): void {
  const { m, env } = pc;
  const a = m.alerts;

  /** A rule form as the API's JSON body: empty fields are left out so the rule's defaults apply. */
  const ruleBody = (form: Params): Record<string, unknown> => {
    const body: Record<string, unknown> = { kind: form.get('kind'), scope: form.get('scope') ?? 'all', enabled: form.get('enabled') === '1' };
    const name = optional(form, 'name');
    if (name) body.name = name;
    const threshold = optional(form, 'threshold');
    if (threshold !== null && KIND_INFO[form.get('kind') as keyof typeof KIND_INFO]?.threshold) body.threshold = Number.isFinite(Number(threshold)) ? Number(threshold) : threshold;
    const duration = optional(form, 'duration_seconds');
    if (duration !== null && KIND_INFO[form.get('kind') as keyof typeof KIND_INFO]?.duration) body.duration_seconds = Number.isFinite(Number(duration)) ? Number(duration) : duration;
    for (const k of ['node', 'project', 'spider']) {
      const v = optional(form, k);
      if (v) body[k] = v;
    }
    body.recipients = optional(form, 'recipients') ?? '';
    return body;
  };

  const listPage = async (ctx: Parameters<Parameters<typeof page>[3]>[0], extra: Record<string, unknown> = {}, status = 200) => {
    const nodes = (await m.nodes.all()).map((n) => n.name);
    const projects = await m.repo.projects();
    const open = await a.firings.openMap();
    const all = await a.rules.all();
    const p = pageOf(ctx, all.length, 50);
    render(env, ctx, 'alerts.njk', {
      rules: all.slice(p.offset, p.offset + p.limit).map((r) => ({ ...r, firing: open.get(r.id)?.size ?? 0 })), kinds: KIND_INFO, page: p, pageBase: baseQuery(ctx, []),
      recent: (await a.firings.history({ limit: 10, offset: 0 })).firings.map(firingView), smtp: smtpView(a.smtp(), a.smtpSource(), a.smtpCheck()), units: UNITS,
      nodes, projects, form: { kind: 'node_offline', scope: 'all', enabled: true }, ...extra,
    }, status);
  };

  page(pc, '/alerts', 'viewer', (ctx) => listPage(ctx));

  action(pc, '/alerts/rules', 'operator', async (ctx, form) => {
    try {
      const input = parseRuleInput(ruleBody(form));
      // The same watch twice would send every mail twice (e.g. the starter rules SMTP set up).
      const twin = (await a.rules.all()).find((r) => sameWatch(r, input));
      if (twin) throw new HttpError(400, `Rule '${twin.name}' already watches this (same kind, scope and threshold): edit it instead of adding another.`);
      const rule = await a.createRule(input);
      redirect(ctx, '/alerts', { kind: 'ok', text: `Rule '${rule.name}' created.` });
    } catch (e) {
      if (!(e instanceof HttpError)) throw e;
      await listPage(ctx, { error: e.message, form: { ...ruleBody(form), recipients: form.get('recipients') ?? '' } }, 400);
    }
  });

  const findRule = async (id: string) => {
    const rule = /^\d{1,15}$/.test(id) ? await a.rules.get(Number(id)) : undefined;
    if (!rule) throw new HttpError(404, `There is no alert rule ${id}.`);
    return rule;
  };

  page(pc, '/alerts/rules/:id', 'viewer', async (ctx) => {
    const rule = await findRule(ctx.params.id!);
    const nodes = (await m.nodes.all()).map((n) => n.name);
    const projects = await m.repo.projects();
    render(env, ctx, 'alert_rule.njk', {
      rule, kinds: KIND_INFO, firings: (await a.firings.history({ rule: rule.id, limit: 50, offset: 0 })).firings.map(firingView),
      nodes, projects,
      form: { ...rule, node: rule.scope_node, project: rule.scope_project, spider: rule.scope_spider, recipients: rule.recipients.join(', ') },
    });
  });

  action(pc, '/alerts/rules/:id', 'operator', async (ctx, form) => {
    const rule = await findRule(ctx.params.id!);
    try {
      await a.updateRule(rule.id, parseRuleInput({ ...ruleBody(form), threshold: ruleBody(form).threshold ?? null, duration_seconds: ruleBody(form).duration_seconds ?? 0 }, rule));
      redirect(ctx, `/alerts/rules/${rule.id}`, { kind: 'ok', text: 'Rule saved.' });
    } catch (e) {
      if (!(e instanceof HttpError)) throw e;
      render(env, ctx, 'alert_rule.njk', {
        rule, kinds: KIND_INFO, firings: (await a.firings.history({ rule: rule.id, limit: 50, offset: 0 })).firings.map(firingView),
        nodes: (await m.nodes.all()).map((n) => n.name), projects: await m.repo.projects(), error: e.message, form: { ...ruleBody(form), recipients: form.get('recipients') ?? '' },
      }, 400);
    }
  });

  action(pc, '/alerts/rules/:id/toggle', 'operator', async (ctx) => {
    const rule = await findRule(ctx.params.id!);
    await a.updateRule(rule.id, parseRuleInput({ enabled: !rule.enabled }, rule));
    redirect(ctx, '/alerts', { kind: 'ok', text: `'${rule.name}' ${rule.enabled ? 'disabled' : 'enabled'}.` });
  });

  action(pc, '/alerts/rules/:id/delete', 'operator', async (ctx) => {
    const rule = await findRule(ctx.params.id!);
    await a.removeRule(rule.id);
    redirect(ctx, '/alerts', { kind: 'ok', text: `Rule '${rule.name}' deleted.` });
  });

  page(pc, '/alerts/history', 'viewer', async (ctx) => {
    const state = ctx.query.state === 'firing' || ctx.query.state === 'resolved' ? ctx.query.state : undefined;
    const total = (await a.firings.history({ state, limit: 0, offset: 0 })).total;
    const p = pageOf(ctx, total, 50);
    render(env, ctx, 'alert_history.njk', {
      firings: (await a.firings.history({ state, limit: p.limit, offset: p.offset })).firings.map(firingView), page: p, pageBase: baseQuery(ctx, ['state']),
      state: state ?? '', mails: (await a.outbox.list({ limit: 20, offset: 0 })).map(mailView), outbox: await a.outbox.counts(),
    });
  });

  action(pc, '/settings/smtp', 'admin', async (ctx, form, user) => {
    const body: Record<string, unknown> = {
      host: optional(form, 'host'), secure: form.get('secure') ?? 'starttls', user: optional(form, 'user'),
      from: optional(form, 'from'), to: optional(form, 'to') ?? '',
    };
    const port = optional(form, 'port');
    body.port = port === null ? null : Number.isFinite(Number(port)) ? Number(port) : port;
    // An empty password field keeps the stored one (it is never shown back); the checkbox clears it.
    if (form.get('clear_password') === '1') body.password = null;
    else if ((form.get('password') ?? '') !== '') body.password = form.get('password');
    try {
      const before = new Set((await a.rules.all()).map((r) => r.id));
      await a.saveSmtp(body);
      // The first SMTP setup adds starter rules: say so, rather than let them appear unannounced.
      const added = (await a.rules.all()).filter((r) => !before.has(r.id)).map((r) => r.name);
      redirect(ctx, '/settings', {
        kind: 'ok',
        text: added.length ? `SMTP settings saved. ${added.length} starter alert rule${added.length === 1 ? ' was' : 's were'} added so that mails go out: ${added.join(', ')} (change or disable them on the Alerts page).` : 'SMTP settings saved.',
      });
    } catch (e) {
      if (!(e instanceof HttpError)) throw e;
      // Show the form again with what was typed (never the password), and why it was refused.
      const stored = smtpView(a.smtp(), a.smtpSource(), a.smtpCheck());
      const typed = { ...stored, host: body.host, port: body.port, secure: body.secure, user: body.user, from: body.from, to: String(body.to).split(',').map((x) => x.trim()).filter(Boolean) };
      render(env, ctx, 'settings.njk', { tokens: await m.users.tokens(user.id), newToken: null, smtp: typed, smtpError: `SMTP settings not saved: ${e.message}` }, 400);
    }
  });

  action(pc, '/settings/smtp/test', 'admin', async (ctx, form) => {
    try {
      const r = await a.testMail(parseRecipients(optional(form, 'to') ?? '', 'to'));
      redirect(ctx, '/settings', r.ok
        ? { kind: 'ok', text: `Test mail sent to ${r.to.join(', ')}. The server answered: ${r.response ?? ''}` }
        : { kind: 'error', text: `The test mail was not sent: ${r.error ?? 'unknown error'}${r.code ? ` (SMTP ${r.code})` : ''}` });
    } catch (e) {
      if (!(e instanceof HttpError)) throw e;
      redirect(ctx, '/settings', { kind: 'error', text: e.message });
    }
  });
}

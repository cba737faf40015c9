import type { Context } from 'koa';
import type { Params } from '../../../common/http/request_params.ts';
import { CronInvalid, describeCron } from '../../schedules/cron.ts';
import type { ScheduleRow } from '../../schedules/schedule_store.ts';
import { DispatchError, type Target } from '../../runs/dispatcher.ts';
import { HttpError } from '../../http/input.ts';
import { parseScheduleInput } from '../../http/schedule_input.ts';
import { runView, scheduleView } from '../../http/views.ts';
import { nodeView } from '../../nodes/node_registry.ts';
import { action, baseQuery, page, pageOf, type PageContext } from '../page_kit.ts';
import { kvRows, numberOr, optional, policyFields, targetFrom } from '../forms.ts';
import { redirect, render } from '../render.ts';

const TIMEZONES = (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.('timeZone') ?? ['UTC'];

interface FormValues {
  name: string; cron: string; timezone: string; project: string; spider: string; version: string;
  target: Target; args: Record<string, string>; settings: Record<string, string>; priority: number | string;
  enabled: boolean; overlap: string; missed: string; max_retries: number | string;
  /** limits and failure retries (null: not set) */
  max_runtime: number | string | null; max_memory: number | string | null; nice: number | string | null;
  retries: number | string | null; retry_delay: number | string | null;
  /** never failed over nor stopped by its slave's master lease */
  keep_running?: boolean;
}

/** The schedule list, the cron editor (create and edit), run now, enable/disable, history. */
export function mountSchedulePages(pc: PageContext): void {
  const { m, env } = pc;

  const body = (form: Params) => ({
    name: optional(form, 'name'), cron: form.get('cron') ?? '', timezone: optional(form, 'timezone'), project: optional(form, 'project'),
    spider: optional(form, 'spider'), version: optional(form, 'version'), target: targetFrom(form), args: kvRows(form, 'args'),
    settings: kvRows(form, 'settings'), priority: numberOr(form, 'priority', 0), enabled: form.get('enabled') === '1',
    overlap: form.get('overlap') ?? 'skip', missed: form.get('missed') ?? 'skip', max_retries: numberOr(form, 'max_retries', m.config.maxRetries),
    ...policyFields(form),
  });

  const editor = async (ctx: Context, vars: { values: FormValues; id: number | null; error?: string; history?: unknown; runs?: unknown }, status = 200) => {
    const catalogue = await m.repo.catalogue();
    const nodes = (await m.nodes.all()).map(nodeView);
    render(env, ctx, 'schedule_form.njk', {
      ...vars, catalogue, timezones: TIMEZONES, nodes,
      words: vars.values.cron ? describeCron(vars.values.cron) : null, scheduleNames: vars.id === null ? {} : { [String(vars.id)]: vars.values.name ?? '' },
    }, status);
  };

  const valuesOf = (s: ScheduleRow): FormValues => {
    const v = scheduleView(s, null);
    return { ...v, timezone: v.timezone ?? '', version: v.version ?? '' };
  };

  page(pc, '/schedules', 'viewer', async (ctx) => {
    const all = await m.schedules.all();
    const p = pageOf(ctx, all.length, 50);
    const schedules = [];
    for (const s of all.slice(p.offset, p.offset + p.limit)) {
      let next: Date[] = [];
      try { next = s.enabled ? m.scheduler.nextOccurrences(s, 1) : []; } catch { /* shown as no next run */ }
      const last = (await m.schedules.fires(s.id, 1))[0] ?? null;
      schedules.push({ ...scheduleView(s, next), words: describeCron(s.cron), last });
    }
    render(env, ctx, 'schedules.njk', { schedules, page: p, pageBase: baseQuery(ctx, []) });
  });

  page(pc, '/schedules/new', 'operator', async (ctx) => {
    const project = typeof ctx.query.project === 'string' ? ctx.query.project : '';
    await editor(ctx, {
      id: null,
      values: { name: '', cron: '0 3 * * *', timezone: '', project, spider: '', version: '', target: { mode: 'auto' }, args: {}, settings: {}, priority: 0, enabled: true, overlap: 'skip', missed: 'skip', max_retries: m.config.maxRetries,
        max_runtime: null, max_memory: null, nice: null, retries: 0, retry_delay: 60, keep_running: false },
    });
  });

  const save = async (ctx: Context, form: Params, id: number | null) => {
    const raw = body(form);
    try {
      const input = await parseScheduleInput(m, raw);
      const saved = id === null ? await m.schedules.create(input) : await m.schedules.update(id, input);
      if (!saved) throw new HttpError(404, `There is no schedule ${id}.`);
      await m.scheduler.reload(saved.id);
      redirect(ctx, `/schedules/${saved.id}`, { kind: 'ok', text: id === null ? `Schedule '${saved.name}' created.` : 'Schedule saved.' });
    } catch (e) {
      if (!(e instanceof HttpError || e instanceof CronInvalid || e instanceof DispatchError)) throw e;
      const values = { ...raw, name: raw.name ?? '', timezone: raw.timezone ?? '', project: raw.project ?? '', spider: raw.spider ?? '', version: raw.version ?? '', target: (typeof raw.target === 'string' ? { mode: raw.target } : raw.target) as Target };
      await editor(ctx, { id, values, error: e instanceof CronInvalid ? `Cron expression: ${e.message}` : e.message }, 400);
    }
  };

  action(pc, '/schedules', 'operator', (ctx, form) => save(ctx, form, null));

  const findSchedule = async (id: string) => {
    const s = /^\d{1,15}$/.test(id) ? await m.schedules.get(Number(id)) : undefined;
    if (!s) throw new HttpError(404, `There is no schedule ${id}.`);
    return s;
  };

  page(pc, '/schedules/:id', 'viewer', async (ctx) => {
    const s = await findSchedule(ctx.params.id!);
    await editor(ctx, { id: s.id, values: valuesOf(s), history: await m.schedules.fires(s.id, 30), runs: (await m.runs.query({ schedule_id: s.id, limit: 15, offset: 0 })).runs.map((r) => runView(r)) });
  });

  action(pc, '/schedules/:id', 'operator', async (ctx, form) => save(ctx, form, (await findSchedule(ctx.params.id!)).id));

  action(pc, '/schedules/:id/toggle', 'operator', async (ctx) => {
    const s = await findSchedule(ctx.params.id!);
    const v = scheduleView(s, null);
    await m.schedules.update(s.id, { ...v, enabled: !v.enabled });
    await m.scheduler.reload(s.id);
    redirect(ctx, ctx.get('Referer').includes(`/schedules/${s.id}`) ? `/schedules/${s.id}` : '/schedules', { kind: 'ok', text: `'${s.name}' ${v.enabled ? 'disabled' : 'enabled'}.` });
  });

  action(pc, '/schedules/:id/run', 'operator', async (ctx, _form, user) => {
    const s = await findSchedule(ctx.params.id!);
    try {
      const runs = await m.scheduler.runNow(s.id, user.username);
      redirect(ctx, runs.length === 1 ? `/jobs/${runs[0]!.job}` : `/schedules/${s.id}`, { kind: 'ok', text: `'${s.name}' started on ${runs.map((r) => r.node).join(', ')}.` });
    } catch (e) {
      if (!(e instanceof DispatchError)) throw e;
      redirect(ctx, `/schedules/${s.id}`, { kind: 'error', text: e.message });
    }
  });

  action(pc, '/schedules/:id/delete', 'operator', async (ctx) => {
    const s = await findSchedule(ctx.params.id!);
    await m.schedules.remove(s.id);
    await m.scheduler.reload(s.id);
    redirect(ctx, '/schedules', { kind: 'ok', text: `Schedule '${s.name}' deleted.` });
  });
}

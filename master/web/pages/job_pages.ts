import type { Context } from 'koa';
import { HttpError } from '../../http/input.ts';
import { runView } from '../../http/views.ts';
import type { RunFilter, RunRow } from '../../runs/run_store.ts';
import { action, baseQuery, page, pageOf, type PageContext } from '../page_kit.ts';
import { redirect, render } from '../render.ts';

const STATES = ['active', 'pending', 'running', 'finished', 'failed', 'lost'];
const SINCE: Record<string, number> = { '1h': 3600_000, '24h': 24 * 3600_000, '7d': 7 * 24 * 3600_000 };

/** The jobs list with filters, a job's page (live log, stats, errors, items), and cancel. */
export function mountJobPages(pc: PageContext): void {
  const { m, env } = pc;

  const filterOf = (ctx: Context): Omit<RunFilter, 'limit' | 'offset'> => {
    const q = (k: string) => (typeof ctx.query[k] === 'string' && ctx.query[k] !== '' ? (ctx.query[k] as string) : undefined);
    const state = q('state');
    const since = q('since');
    const schedule = q('schedule');
    return {
      schedule_id: schedule && /^\d{1,15}$/.test(schedule) ? Number(schedule) : undefined,
      state: state && STATES.includes(state) ? state : undefined,
      node: q('node'), project: q('project'), spider: q('spider'),
      since: since && SINCE[since] ? Date.now() - SINCE[since]! : undefined,
    };
  };

  page(pc, '/jobs', 'viewer', async (ctx) => {
    const nodeNames = (await m.nodes.all()).map((n) => n.name);
    const projects = await m.repo.projects();
    const filter = filterOf(ctx);
    const { offset, limit } = pageOf(ctx, 0, 50);
    const q = await m.runs.query({ ...filter, limit, offset });
    // A capped count still lets the pager go on while full pages keep coming.
    const total = q.total_exact ? q.total : Math.max(q.total, offset + q.runs.length + (q.runs.length === limit ? 1 : 0));
    const p = pageOf(ctx, total, limit, q.total_exact);
    render(env, ctx, 'jobs.njk', {
      runs: await Promise.all(q.runs.map(withRetryLinks)), page: p,
      pageBase: baseQuery(ctx, ['state', 'node', 'project', 'spider', 'since', 'schedule']), nowMs: Date.now(),
      q: { state: ctx.query.state ?? '', node: ctx.query.node ?? '', project: ctx.query.project ?? '', spider: ctx.query.spider ?? '', since: ctx.query.since ?? '', schedule: ctx.query.schedule ?? '' },
      schedules: (await m.schedules.all()).map((s) => ({ id: String(s.id), name: s.name })), scheduleNames: await m.schedules.names(),
      states: STATES, nodes: nodeNames, projects,
      filtered: Object.values(filter).some((v) => v !== undefined),
    });
  });

  /** A run for the list, with the job it repeats and the first run of its retry chain (for "retry 2 of 3"). */
  const withRetryLinks = async (r: RunRow) => {
    const jobs = new Map<number, string>();
    let root = r;
    for (let i = 0; i < 50 && root.retry_of !== null; i++) {
      const prev = await m.runs.get(root.retry_of);
      if (!prev) break;
      jobs.set(prev.id, prev.job);
      root = prev;
    }
    return { ...runView(r, (id) => jobs.get(id)), retry_root_job: root === r ? null : root.job };
  };

  const findRun = async (job: string) => {
    const run = await m.runs.byJob(job);
    if (!run) throw new HttpError(404, `There is no job ${job}.`);
    return run;
  };

  page(pc, '/jobs/:job', 'viewer', async (ctx) => {
    const run = await findRun(ctx.params.job!);
    const previous = run.retry_of ? await m.runs.get(run.retry_of) : undefined;
    const related = [previous, ...(await m.runs.query({ project: run.project, spider: run.spider, limit: 200, offset: 0 })).runs.filter((r) => r.retry_of === run.id)]
      .filter((r): r is NonNullable<typeof r> => !!r).map((r) => runView(r));
    const version = run.version ?? await m.repo.newest(run.project);
    const kind = version ? (await m.repo.get(run.project, version))?.kind : undefined;
    render(env, ctx, 'job.njk', {
      run: runView(run, (id) => (id === previous?.id ? previous.job : undefined)), related, nowMs: Date.now(), active: ['dispatching', 'pending', 'running'].includes(run.state),
      // Generic (non-Scrapy) packages have no Scrapy stats: their page shows no empty stats panel.
      isScrapy: kind === undefined || kind === 'scrapy-egg',
    });
  });

  action(pc, '/jobs/:job/cancel', 'operator', async (ctx) => {
    const run = await findRun(ctx.params.job!);
    try {
      const prev = await m.tracker.cancel(run);
      redirect(ctx, `/jobs/${run.job}`, { kind: 'ok', text: prev ? `Cancel sent (the job was ${prev}).` : 'The job was not active any more.' });
    } catch (e) {
      redirect(ctx, `/jobs/${run.job}`, { kind: 'error', text: `Could not cancel: ${(e as Error).message}` });
    }
  });
}

import type { NodeMetrics } from '../../../common/types.ts';
import { NodeProblem } from '../../master.ts';
import { nodeView, type NodeView } from '../../nodes/node_registry.ts';
import { HttpError } from '../../http/input.ts';
import { runView } from '../../http/views.ts';
import type { Context } from 'koa';
import { action, page, pageOf, baseQuery, type PageContext } from '../page_kit.ts';
import { redirect, render } from '../render.ts';

const DAY = 24 * 3600_000;

function diskMax(m: NodeMetrics | null): number | null {
  return m && m.disks.length ? Math.max(...m.disks.map((d) => d.used_percent)) : null;
}

function withFigures(n: NodeView) {
  return { ...n, cpu: n.metrics?.cpu_percent ?? null, mem: n.metrics?.memory.used_percent ?? null, disk: diskMax(n.metrics) };
}

/** Dashboard, nodes list and node page. */
export function mountClusterPages(pc: PageContext): void {
  const { m, env } = pc;

  page(pc, '/', 'viewer', async (ctx) => {
    const nodes = (await m.nodes.all()).map(nodeView).map(withFigures);
    const hasProjects = (await m.repo.projects()).length > 0;
    const online = nodes.filter((n) => n.status === 'online');
    const avg = (xs: Array<number | null>) => {
      const v = xs.filter((x): x is number => x !== null);
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
    };
    const [counts, today, problems] = await Promise.all([m.runs.counts(), m.runs.summarySince(Date.now() - DAY), m.runs.recentProblems(Date.now() - DAY, 8)]);
    const upcoming = (await m.schedules.all()).filter((s) => s.enabled).flatMap((s) => {
      try {
        return m.scheduler.nextOccurrences(s, 1).map((d) => ({ id: s.id, name: s.name, project: s.project, spider: s.spider, at: d.getTime() }));
      } catch {
        return [];
      }
    }).sort((a, b) => a.at - b.at).slice(0, 6);
    const lead = await m.leadershipStatus();
    render(env, ctx, 'dashboard.njk', {
      // Several masters on one database: which leads, and the standbys (one master: nothing to show).
      masters: lead.masters.length > 1 || !lead.leader ? lead.masters.map((x) => ({ ...x, self: x.id === lead.id })) : [],
      epoch: lead.epoch,
      nodes, online: online.length, offline: nodes.filter((n) => n.status === 'offline').length,
      running: counts.running ?? 0, pending: (counts.pending ?? 0) + (counts.dispatching ?? 0),
      today, upcoming,
      problems: problems.map((r) => runView(r)),
      cpu: avg(online.map((n) => n.cpu)), mem: avg(online.map((n) => n.mem)),
      hasProjects,
    });
  });

  const nodesPage = async (ctx: Context) => {
    const all = await m.nodes.all();
    const p = pageOf(ctx, all.length, 50);
    return { nodes: all.slice(p.offset, p.offset + p.limit).map(nodeView).map(withFigures), page: p, pageBase: baseQuery(ctx, []) };
  };

  page(pc, '/nodes', 'viewer', async (ctx) => {
    render(env, ctx, 'nodes.njk', { ...await nodesPage(ctx), form: {} });
  });

  action(pc, '/nodes', 'admin', async (ctx, form) => {
    const value = (k: string) => (form.get(k) ?? '').trim() || null;
    try {
      const node = await m.addNode({ url: value('url') ?? '', name: value('name'), username: value('username'), password: value('password') });
      redirect(ctx, `/nodes/${encodeURIComponent(node.name)}`, { kind: 'ok', text: `Node ${node.name} added; it turns online at its first good heartbeat.` });
    } catch (e) {
      if (!(e instanceof NodeProblem)) throw e;
      render(env, ctx, 'nodes.njk', { ...await nodesPage(ctx), form: { url: value('url'), name: value('name'), username: value('username') }, error: e.message }, 400);
    }
  });

  const findNode = async (name: string) => {
    const node = await m.nodes.byName(name);
    if (!node) throw new HttpError(404, `There is no node named ${name}.`);
    return node;
  };

  page(pc, '/nodes/:name', 'viewer', async (ctx) => {
    const node = await findNode(ctx.params.name!);
    const events = await m.nodes.events(node.id, 20);
    const versions = await m.repo.versionsOnNode(node.id);
    const { offset, limit } = pageOf(ctx, 0, 25);
    const q = await m.runs.query({ node: node.name, limit, offset });
    const total = q.total_exact ? q.total : Math.max(q.total, offset + q.runs.length + (q.runs.length === limit ? 1 : 0));
    const p = pageOf(ctx, total, limit, q.total_exact);
    render(env, ctx, 'node.njk', {
      node: withFigures(nodeView(node)), events,
      runs: q.runs.map((r) => runView(r)), page: p, pageBase: baseQuery(ctx, []),
      versions, scheduleNames: await m.schedules.names(),
    });
  });

  action(pc, '/nodes/:name/drain', 'operator', async (ctx, form) => {
    const node = await findNode(ctx.params.name!);
    const draining = form.get('draining') === '1';
    await m.nodes.setDraining(node.id, draining);
    redirect(ctx, `/nodes/${encodeURIComponent(node.name)}`, { kind: 'ok', text: draining ? `${node.name} is draining: it gets no new runs.` : `${node.name} takes new runs again.` });
  });

  action(pc, '/nodes/:name/delete', 'admin', async (ctx) => {
    const node = await findNode(ctx.params.name!);
    await m.removeNode(node.name);
    redirect(ctx, '/nodes', { kind: 'ok', text: `Node ${node.name} removed.` });
  });
}

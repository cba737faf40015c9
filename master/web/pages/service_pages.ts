// The Services page: every spider service with its replicas per node (desired vs running), a
// scale control, create and remove. Forms carry the session's CSRF token (page_kit's action()).
import type { Context } from 'koa';
import type { Params } from '../../../common/http/request_params.ts';
import { dict } from '../../../common/dict.ts';
import { labelsMatch, parseLabelList } from '../../../common/labels.ts';
import { HttpError } from '../../http/input.ts';
import { serviceDetail } from '../../http/services_api.ts';
import { nodeLabels, type NodeRow } from '../../nodes/node_registry.ts';
import { DispatchError } from '../../runs/dispatcher.ts';
import type { RunRow } from '../../runs/run_store.ts';
import { MAX_REPLICAS, parseServiceInput } from '../../services/service_input.ts';
import type { ServiceRow } from '../../services/service_store.ts';
import { action, page, type PageContext } from '../page_kit.ts';
import { redirect, render } from '../render.ts';

/** How a status reads at a glance (the badge colour). */
function tone(status: string): string {
  if (status === 'running' || status === 'scaled to 0') return 'ok';
  if (status === 'crash-looping' || status.startsWith('roll paused')) return 'error';
  if (status.startsWith('unplaced')) return 'cancelled';
  return 'info';
}

/** 'a=1\nb=2' or 'a=1, b=2' -> {a: '1', b: '2'} (a line without '=' is refused by the API's checks). */
function pairsOf(text: string): Record<string, string> {
  const out = dict<string>();
  for (const line of text.split(/[\n,]/).map((l) => l.trim()).filter(Boolean)) {
    const eq = line.indexOf('=');
    if (eq <= 0) throw new HttpError(400, `'${line.slice(0, 60)}' must look like NAME=VALUE`);
    out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return out;
}

export function mountServicePages(pc: PageContext): void {
  const { m, env } = pc;

  /** Desired replicas per node: the even spread over the nodes the service may use, capped per node. */
  const rows = async (s: ServiceRow, replicas: readonly RunRow[], nodes: readonly NodeRow[]) => {
    const d = await serviceDetail(m, s, replicas);
    const required = JSON.parse(s.labels) as Record<string, string>;
    const usable = nodes.filter((n) => n.status === 'online' && !n.draining && labelsMatch(nodeLabels(n), required));
    const desired = new Map<string, number>();
    let left = s.replicas;
    for (let round = 0; left > 0 && usable.length; round++) {
      let placed = 0;
      for (const n of usable) {
        const have = desired.get(n.name) ?? 0;
        if (left > 0 && (s.max_per_node === null || have < s.max_per_node)) { desired.set(n.name, have + 1); left--; placed++; }
      }
      if (!placed) break;
    }
    const names = [...new Set([...usable.map((n) => n.name), ...d.nodes.map((n) => n.node)])].sort();
    return {
      ...d, tone: tone(d.status), labelText: Object.entries(d.placement.labels).map(([k, v]) => `${k}=${v}`).join(', '),
      perNode: names.map((name) => {
        const got = d.nodes.find((n) => n.node === name);
        return { node: name, desired: desired.get(name) ?? 0, running: got?.running ?? 0, pending: got?.pending ?? 0, stopping: got?.stopping ?? 0, versions: got?.versions ?? {} };
      }),
    };
  };

  const list = async (ctx: Context, extra: Record<string, unknown> = {}, status = 200) => {
    const catalogue = (await m.repo.catalogue()).map((c) => ({ project: c.project, spiders: c.spiders }));
    const replicas = await m.runs.activeReplicas();
    const nodes = await m.nodes.all();
    const services = await Promise.all((await m.services.all()).map((s) => rows(s, replicas, nodes)));
    render(env, ctx, 'services.njk', { services, catalogue, form: {}, maxReplicas: MAX_REPLICAS, ...extra }, status);
  };

  page(pc, '/services', 'viewer', (ctx) => list(ctx));

  const find = async (id: string) => {
    const s = await m.services.find(id);
    if (!s) throw new HttpError(404, `There is no service ${id}.`);
    return s;
  };

  action(pc, '/services', 'operator', async (ctx, form: Params, user) => {
    const v = (k: string) => (form.get(k) ?? '').trim();
    const num = (k: string) => (v(k) === '' ? null : Number(v(k)));
    try {
      const labels = parseLabelList(v('labels'));
      const input = await parseServiceInput(m.dispatcher, {
        name: v('name') || null, project: v('project'), spider: v('spider'), version: v('version') || null, replicas: num('replicas') ?? 1,
        max_per_node: num('max_per_node'), labels, max_unavailable: num('max_unavailable') ?? 1, max_runtime: num('max_runtime'), max_memory: num('max_memory'),
        args: pairsOf(v('args')), settings: pairsOf(v('settings')),
      });
      if (await m.services.byName(input.name)) throw new HttpError(409, `a service named '${input.name}' already exists`);
      const s = await m.services.create(input, user.username);
      m.reconciler.kick();
      redirect(ctx, '/services', { kind: 'ok', text: `Service '${s.name}' created: ${s.replicas} replica(s) starting.` });
    } catch (e) {
      if (!(e instanceof HttpError || e instanceof DispatchError || e instanceof Error)) throw e;
      await list(ctx, { form: Object.fromEntries(['name', 'project', 'spider', 'version', 'replicas', 'max_per_node', 'labels', 'max_unavailable', 'max_runtime', 'max_memory', 'args', 'settings'].map((k) => [k, v(k)])), error: (e as Error).message }, 400);
    }
  });

  action(pc, '/services/:id/scale', 'operator', async (ctx, form) => {
    const s = await find(ctx.params.id!);
    const raw = (form.get('replicas') ?? '').trim();
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n > MAX_REPLICAS) {
      redirect(ctx, '/services', { kind: 'error', text: `Replicas must be a whole number from 0 to ${MAX_REPLICAS}.` });
      return;
    }
    await m.services.scale(s.id, n);
    await m.reconciler.settle();
    redirect(ctx, '/services', { kind: 'ok', text: `'${s.name}' scaled to ${n}.` });
  });

  action(pc, '/services/:id/delete', 'operator', async (ctx) => {
    const s = await find(ctx.params.id!);
    await m.services.remove(s.id);
    await m.reconciler.settle();
    redirect(ctx, '/services', { kind: 'ok', text: `Service '${s.name}' removed; its replicas are stopping.` });
  });
}

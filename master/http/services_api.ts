// The services API (/api/services): spider services kept at N replicas by the reconciler.
// Roles are middleware on each route: viewers read, operators change.
import type Router from '@koa/router';
import type { Context, Next } from 'koa';
import type { Role } from '../auth/users.ts';
import type { Master } from '../master.ts';
import { MAX_REPLICAS, parseServiceInput } from '../services/service_input.ts';
import { serviceView, type ServiceRow } from '../services/service_store.ts';
import { requireRole } from './auth.ts';
import { Fields, HttpError, readJson } from './input.ts';
import { jsonRoute } from './json_route.ts';
import { runView } from './views.ts';

/** Koa middleware: the caller must hold `role` (401/403 as JSON otherwise). */
export function needs(role: Role) {
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      requireRole(ctx, role);
    } catch (e) {
      ctx.status = (e as HttpError).status;
      ctx.body = { error: (e as Error).message };
      return;
    }
    await next();
  };
}

/** A service as the API shows it: its settings, its status, and desired vs running per node. */
export function serviceDetail(m: Master, s: ServiceRow) {
  const nodes = m.reconciler.replicaCounts(s);
  const plan = m.reconciler.lastPlans.get(s.id);
  return {
    ...serviceView(s),
    running: nodes.reduce((a, n) => a + n.running, 0),
    pending: nodes.reduce((a, n) => a + n.pending, 0),
    stopping: nodes.reduce((a, n) => a + n.stopping, 0),
    unplaced: plan?.unplaced ?? 0,
    unplaced_reason: plan?.unplacedReason ?? null,
    nodes,
  };
}

export function mountServicesApi(router: Router, m: Master): void {
  const find = (ctx: Context): ServiceRow => {
    const s = m.services.find(String(ctx.params.ref));
    if (!s) throw new HttpError(404, `service '${String(ctx.params.ref).slice(0, 100)}' not found`);
    return s;
  };
  const nameTaken = (name: string, except?: number) => {
    const other = m.services.byName(name);
    if (other && other.id !== except) throw new HttpError(409, `a service named '${name}' already exists`);
  };
  const changed = async (s: ServiceRow) => {
    await m.reconciler.settle();
    return { service: serviceDetail(m, m.services.get(s.id) ?? s) };
  };

  router.get('/api/services', needs('viewer'), jsonRoute(() => ({ services: m.services.all().map((s) => serviceDetail(m, s)) })));
  router.post('/api/services', needs('operator'), jsonRoute(async (ctx) => {
    const user = requireRole(ctx, 'operator');
    const input = await parseServiceInput(m.dispatcher, await readJson(ctx));
    nameTaken(input.name);
    const s = m.services.create(input, user.username);
    ctx.status = 201;
    return changed(s);
  }));
  router.get('/api/services/:ref', needs('viewer'), jsonRoute((ctx) => {
    const s = find(ctx);
    const replicas = m.runs.activeReplicas().filter((r) => r.service_id === s.id).map((r) => runView(r));
    return { service: serviceDetail(m, s), replicas, recent: m.runs.endedReplicasSince(s.id, Date.now() - 3600_000).slice(0, 20).map((r) => runView(r)) };
  }));
  router.put('/api/services/:ref', needs('operator'), jsonRoute(async (ctx) => {
    const s = find(ctx);
    const input = await parseServiceInput(m.dispatcher, await readJson(ctx), s);
    nameTaken(input.name, s.id);
    return changed(m.services.update(s.id, input)!);
  }));
  router.delete('/api/services/:ref', needs('operator'), jsonRoute(async (ctx) => {
    const s = find(ctx);
    m.services.remove(s.id);
    await m.reconciler.settle(); // its replicas are stopped by the next pass
    return { ok: true, stopping: m.runs.activeReplicas().filter((r) => r.service_id === s.id).length };
  }));
  router.post('/api/services/:ref/scale', needs('operator'), jsonRoute(async (ctx) => {
    const s = find(ctx);
    const f = new Fields(await readJson(ctx));
    if (!f.has('replicas')) throw new HttpError(400, "'replicas' is required");
    return changed(m.services.scale(s.id, f.number('replicas', 0, { min: 0, max: MAX_REPLICAS, integer: true }))!);
  }));
}

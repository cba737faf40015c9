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
import type { RunRow } from '../runs/run_store.ts';
import { isUniqueViolation } from '../store/sql_db.ts';

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

/** A service as the API shows it: its settings, its status, and desired vs running per node (from `replicas`, every service's active ones, when given). */
export async function serviceDetail(m: Master, s: ServiceRow, replicas?: readonly RunRow[]) {
  const nodes = await m.reconciler.replicaCounts(s, replicas);
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

/** A name taken meanwhile (a parallel request, another master): 409 like the check before it. */
function nameClash(e: unknown, name: string): unknown {
  return isUniqueViolation(e) ? new HttpError(409, `a service named '${name}' already exists`) : e;
}

export function mountServicesApi(router: Router, m: Master): void {
  const find = async (ctx: Context): Promise<ServiceRow> => {
    const s = await m.services.find(String(ctx.params.ref));
    if (!s) throw new HttpError(404, `service '${String(ctx.params.ref).slice(0, 100)}' not found`);
    return s;
  };
  const nameTaken = async (name: string, except?: number) => {
    const other = await m.services.byName(name);
    if (other && other.id !== except) throw new HttpError(409, `a service named '${name}' already exists`);
  };
  const changed = async (s: ServiceRow) => {
    await m.reconciler.settle();
    return { service: await serviceDetail(m, (await m.services.get(s.id)) ?? s) };
  };

  router.get('/api/services', needs('viewer'), jsonRoute(async () => {
    const replicas = await m.runs.activeReplicas();
    return { services: await Promise.all((await m.services.all()).map((s) => serviceDetail(m, s, replicas))) };
  }));
  router.post('/api/services', needs('operator'), jsonRoute(async (ctx) => {
    const user = requireRole(ctx, 'operator');
    const input = await parseServiceInput(m.dispatcher, await readJson(ctx));
    await nameTaken(input.name);
    const s = await m.services.create(input, user.username).catch((e: unknown) => { throw nameClash(e, input.name); });
    ctx.status = 201;
    return changed(s);
  }));
  router.get('/api/services/:ref', needs('viewer'), jsonRoute(async (ctx) => {
    const s = await find(ctx);
    const replicas = (await m.runs.activeReplicas()).filter((r) => r.service_id === s.id).map((r) => runView(r));
    return { service: await serviceDetail(m, s), replicas, recent: (await m.runs.endedReplicasSince(s.id, Date.now() - 3600_000)).slice(0, 20).map((r) => runView(r)) };
  }));
  router.put('/api/services/:ref', needs('operator'), jsonRoute(async (ctx) => {
    const s = await find(ctx);
    const input = await parseServiceInput(m.dispatcher, await readJson(ctx), s);
    await nameTaken(input.name, s.id);
    const updated = await m.services.update(s.id, input).catch((e: unknown) => { throw nameClash(e, input.name); });
    if (!updated) throw new HttpError(404, `service '${String(ctx.params.ref).slice(0, 100)}' not found`);
    return changed(updated);
  }));
  router.delete('/api/services/:ref', needs('operator'), jsonRoute(async (ctx) => {
    const s = await find(ctx);
    await m.services.remove(s.id);
    await m.reconciler.settle(); // its replicas are stopped by the next pass
    return { ok: true, stopping: (await m.runs.activeReplicas()).filter((r) => r.service_id === s.id).length };
  }));
  router.post('/api/services/:ref/scale', needs('operator'), jsonRoute(async (ctx) => {
    const s = await find(ctx);
    const f = new Fields(await readJson(ctx));
    if (!f.has('replicas')) throw new HttpError(400, "'replicas' is required");
    const scaled = await m.services.scale(s.id, f.number('replicas', 0, { min: 0, max: MAX_REPLICAS, integer: true }));
    if (!scaled) throw new HttpError(404, `service '${String(ctx.params.ref).slice(0, 100)}' not found`);
    return changed(scaled);
  }));
}

import type Router from '@koa/router';
import type { Context } from 'koa';
import { sanitizeVersion, nameProblem } from '../../common/names.ts';
import { FORM_LIMITS, readParams } from '../../common/http/request_params.ts';
import type { Master } from '../master.ts';
import { nodeView } from '../nodes/node_registry.ts';
import { NodeClient } from '../nodes/node_client.ts';
import { ACTIVE_STATES, type RunRow } from '../runs/run_store.ts';
import { describeCron, parseCron } from '../schedules/cron.ts';
import type { ScheduleInput, ScheduleRow } from '../schedules/schedule_store.ts';
import { parseScheduleInput } from './schedule_input.ts';
import { ROLES, type Role } from '../auth/users.ts';
import { authOf, requireRole } from './auth.ts';
import { bad, Fields, HttpError, intQuery, readJson, strQuery } from './input.ts';
import { jsonRoute } from './json_route.ts';
import { readPolicy } from '../runs/run_policy.ts';
import { runView, scheduleView } from './views.ts';
import { streamRunLog } from './log_stream.ts';
import { eventLoopLag } from '../../common/event_loop_lag.ts';

function checkName(kind: string, v: string): string {
  const problem = nameProblem(v);
  if (problem) throw bad(`${kind} '${v.slice(0, 100)}' ${problem}`);
  return v;
}

/** The master's JSON API under /api: everything the CLI and the web UI do goes through here. */
export function mountApi(router: Router, m: Master): void {
  const r = (method: 'get' | 'post' | 'put' | 'delete', path: string, h: (ctx: Context) => Promise<unknown> | unknown) => router[method](path, jsonRoute(h));
  /** Run views, with the job each retry repeats (read in one query). */
  const viewRuns = async (rows: RunRow[]) => {
    const jobs = await m.runs.jobsOf(rows.flatMap((r) => r.retry_of !== null ? [r.retry_of] : []));
    return rows.map((r) => runView(r, (id) => jobs.get(id)));
  };
  const viewRun = async (r: RunRow) => (await viewRuns([r]))[0]!;
  const findRun = async (job: string): Promise<RunRow> => {
    const run = await m.runs.byJob(job);
    if (!run) throw new HttpError(404, `run '${job}' not found`);
    return run;
  };

  // ---- cluster ----
  r('get', '/api/status', async (ctx) => {
    requireRole(ctx, 'viewer');
    const nodes = await m.nodes.all();
    const lead = await m.leadershipStatus();
    return {
      leader: lead.leader, master_id: lead.id, epoch: lead.epoch, leader_id: lead.leader_id, masters: lead.masters,
      nodes: { total: nodes.length, online: nodes.filter((n) => n.status === 'online').length, offline: nodes.filter((n) => n.status === 'offline').length },
      runs: await m.runs.counts(),
      projects: (await m.repo.projects()).length,
      schedules: await m.schedules.count(),
      event_loop_lag: eventLoopLag().figures(),
    };
  });

  r('post', '/api/cluster/announce', async (ctx) => {
    if (!authOf(ctx).cluster) throw new HttpError(401, 'announcing needs the cluster token (Authorization: Bearer <token>)');
    const f = new Fields(await readJson(ctx));
    const node = await m.addNode({ url: f.requiredString('url', 500), name: f.string('name', { max: 200 }), username: null, password: null, labels: f.has('labels') ? f.labels('labels') : null }, 'announced',
      f.has('max_proc') ? f.number('max_proc', 0, { min: 0, integer: true }) : null);
    return { node: node.name, heartbeat_interval_ms: m.config.heartbeatIntervalMs };
  });

  // ---- nodes ----
  r('get', '/api/nodes', async (ctx) => {
    requireRole(ctx, 'viewer');
    return { nodes: (await m.nodes.all()).map(nodeView) };
  });
  r('post', '/api/nodes', async (ctx) => {
    requireRole(ctx, 'admin');
    const f = new Fields(await readJson(ctx));
    const node = await m.addNode({ url: f.requiredString('url', 500), name: f.string('name', { max: 200 }), username: f.string('username', { max: 200 }), password: f.string('password', { max: 500 }), labels: f.labels('labels') });
    ctx.status = 201;
    return { node: nodeView(node) };
  });
  r('get', '/api/nodes/:name', async (ctx) => {
    requireRole(ctx, 'viewer');
    const node = await m.nodes.byName(ctx.params.name!);
    if (!node) throw new HttpError(404, `node '${ctx.params.name}' not found`);
    const since = intQuery(ctx, 'since', Date.now() - 3600_000, Number.MAX_SAFE_INTEGER);
    return { node: nodeView(node), events: await m.nodes.events(node.id), metrics: await m.nodes.samples(node.id, since), versions: await m.repo.versionsOnNode(node.id) };
  });
  r('delete', '/api/nodes/:name', async (ctx) => {
    requireRole(ctx, 'admin');
    if (!(await m.removeNode(ctx.params.name!))) throw new HttpError(404, `node '${ctx.params.name}' not found`);
    return { ok: true };
  });
  // Labels of a node (what service placement can require); an announcing slave's --label replaces them.
  const setNodeLabels = async (ctx: Context) => {
    requireRole(ctx, 'admin');
    const node = await m.nodes.byName(ctx.params.name!);
    if (!node) throw new HttpError(404, `node '${ctx.params.name}' not found`);
    const f = new Fields(await readJson(ctx));
    if (!f.has('labels')) throw bad("'labels' is required: an object like {\"region\": \"eu\"}");
    await m.nodes.setLabels(node.id, f.labels('labels'));
    m.reconciler.kick();
    return { node: nodeView((await m.nodes.byId(node.id))!) };
  };
  router.put('/api/nodes/:name', jsonRoute(setNodeLabels));
  router.patch('/api/nodes/:name', jsonRoute(setNodeLabels));
  r('post', '/api/nodes/:name/drain', async (ctx) => {
    requireRole(ctx, 'operator');
    const node = await m.nodes.byName(ctx.params.name!);
    if (!node) throw new HttpError(404, `node '${ctx.params.name}' not found`);
    const f = new Fields(await readJson(ctx));
    await m.nodes.setDraining(node.id, f.bool('draining', true));
    return { node: nodeView((await m.nodes.byId(node.id))!) };
  });

  // ---- projects, versions, deployments ----
  r('get', '/api/projects', async (ctx) => {
    requireRole(ctx, 'viewer');
    const names = new Map((await m.nodes.all()).map((n) => [n.id, n.name]));
    const projects = [];
    for (const project of await m.repo.projects()) {
      const versions = [];
      for (const version of await m.repo.versions(project)) {
        const v = await m.repo.get(project, version);
        if (!v) continue; // deleted meanwhile
        versions.push({
          version, kind: v.kind, size: v.size, sha256: v.sha256, uploaded_at: v.uploaded_at, uploaded_by: v.uploaded_by,
          spiders: v.spiders ? (JSON.parse(v.spiders) as string[]) : null, requirements: await m.repo.requirements(project, version),
          nodes: [...await m.repo.nodesWith(project, version)].map((id) => names.get(id)).filter((x): x is string => !!x).sort(),
        });
      }
      projects.push({ project, versions });
    }
    return { projects };
  });
  r('post', '/api/projects/:project/versions', async (ctx) => {
    const user = requireRole(ctx, 'operator');
    const project = checkName('project', ctx.params.project!);
    const params = await readParams(ctx, { ...FORM_LIMITS, upload: { fields: ['egg', 'package'], maxBytes: m.config.maxUploadBytes } });
    const version = params.get('version');
    if (!version) throw bad("'version' is required");
    const file = params.files.get('egg') ?? params.files.get('package');
    if (!file) throw bad("upload the package as the multipart file field 'egg'");
    const stored = checkName('version', sanitizeVersion(version));
    await m.repo.add(project, stored, file, user.username);
    const online = (await m.nodes.all()).filter((n) => n.status === 'online');
    const { id, done } = await m.deployer.deploy(project, stored, online, 'upload');
    if (ctx.query.wait === '1' || ctx.query.wait === 'true') await done;
    ctx.status = 201;
    return { project, version: stored, deployment: await m.deployer.get(id) };
  });
  r('post', '/api/projects/:project/versions/:version/deploy', async (ctx) => {
    requireRole(ctx, 'operator');
    const { project, version } = ctx.params as { project: string; version: string };
    if (!(await m.repo.get(project, version))) throw new HttpError(404, `version '${version}' of project '${project}' not found`);
    const { id, done } = await m.deployer.deploy(project, version, (await m.nodes.all()).filter((n) => n.status === 'online'), 'roll');
    if (ctx.query.wait === '1' || ctx.query.wait === 'true') await done;
    return { deployment: await m.deployer.get(id) };
  });
  r('delete', '/api/projects/:project/versions/:version', async (ctx) => {
    requireRole(ctx, 'operator');
    const { project, version } = ctx.params as { project: string; version: string };
    if (!(await m.repo.deleteVersion(project, version))) throw new HttpError(404, `version '${version}' of project '${project}' not found`);
    return { nodes: await m.deployer.deleteEverywhere(project, version) };
  });
  r('delete', '/api/projects/:project', async (ctx) => {
    requireRole(ctx, 'operator');
    const project = ctx.params.project!;
    if (!(await m.repo.deleteProject(project))) throw new HttpError(404, `project '${project}' not found`);
    return { nodes: await m.deployer.deleteEverywhere(project, null) };
  });
  r('get', '/api/deployments', async (ctx) => {
    requireRole(ctx, 'viewer');
    return { deployments: await m.deployer.recent(strQuery(ctx, 'project') ?? null, intQuery(ctx, 'limit', 20, 500)) };
  });
  r('get', '/api/deployments/:id', async (ctx) => {
    requireRole(ctx, 'viewer');
    const d = await m.deployer.get(Number(ctx.params.id));
    if (!d) throw new HttpError(404, `deployment '${ctx.params.id}' not found`);
    return { deployment: d };
  });

  // ---- runs ----
  r('post', '/api/runs', async (ctx) => {
    const user = requireRole(ctx, 'operator');
    const f = new Fields(await readJson(ctx));
    const runs = await m.dispatcher.dispatch({
      project: f.name('project')!, spider: f.name('spider')!, version: f.name('version', false), args: f.stringMap('args'), settings: f.stringMap('settings'),
      priority: f.number('priority', 0), target: f.target('target'), scheduleId: null,
      retriesLeft: f.number('max_retries', m.config.maxRetries, { min: 0, max: 20, integer: true }), createdBy: user.username,
      policy: readPolicy(f),
    });
    ctx.status = 201;
    return { runs: await viewRuns(runs) };
  });
  r('get', '/api/runs', async (ctx) => {
    requireRole(ctx, 'viewer');
    const state = strQuery(ctx, 'state');
    if (state !== undefined && state !== 'active' && ![...ACTIVE_STATES, 'finished', 'lost', 'failed'].includes(state)) throw bad(`query 'state' must be one of active, dispatching, pending, running, finished, lost, failed`);
    const schedule = strQuery(ctx, 'schedule');
    const { runs, total, total_exact } = await m.runs.query({
      state, node: strQuery(ctx, 'node'), project: strQuery(ctx, 'project'), spider: strQuery(ctx, 'spider'),
      schedule_id: schedule === undefined ? undefined : intQuery(ctx, 'schedule', 0, Number.MAX_SAFE_INTEGER), since: strQuery(ctx, 'since') === undefined ? undefined : intQuery(ctx, 'since', 0, Number.MAX_SAFE_INTEGER),
      limit: intQuery(ctx, 'limit', 50, 1000), offset: intQuery(ctx, 'offset', 0, Number.MAX_SAFE_INTEGER),
    });
    return { runs: await viewRuns(runs), total, total_exact };
  });
  r('get', '/api/runs/:job', async (ctx) => {
    requireRole(ctx, 'viewer');
    return { run: await viewRun(await findRun(ctx.params.job!)) };
  });
  r('post', '/api/runs/:job/cancel', async (ctx) => {
    requireRole(ctx, 'operator');
    const run = await findRun(ctx.params.job!);
    return { prevstate: await m.tracker.cancel(run) };
  });
  r('post', '/api/runs/stop', async (ctx) => {
    requireRole(ctx, 'operator');
    const f = new Fields(await readJson(ctx));
    const project = f.name('project')!;
    const spider = f.name('spider', false);
    const active = (await m.runs.query({ state: 'active', project, spider: spider ?? undefined, limit: 100_000, offset: 0 })).runs;
    const results = await Promise.all(active.map(async (run) => ({ job: run.job, node: run.node, prevstate: await m.tracker.cancel(run).catch((e: Error) => `error: ${e.message}`) })));
    return { cancelled: results };
  });
  /** For routes that answer raw bytes (not jsonRoute): a viewer, and a run with a node; else the error is set. */
  const runForRawRoute = async (ctx: Context) => {
    try {
      requireRole(ctx, 'viewer');
    } catch (e) {
      ctx.status = (e as HttpError).status;
      ctx.body = { error: (e as Error).message };
      return null;
    }
    const run = await m.runs.byJob(ctx.params.job!);
    const node = run?.node_id ? await m.nodes.byId(run.node_id) : undefined;
    if (!run || !node) {
      ctx.status = 404;
      ctx.body = { error: `run '${ctx.params.job}' not found` };
      return null;
    }
    return { run, node };
  };

  // The run's log, fetched from its node (Range-free tail by bytes: ?tail=65536).
  router.get('/api/runs/:job/log', async (ctx) => {
    const found = await runForRawRoute(ctx);
    if (!found) return;
    const { run, node } = found;
    const client = new NodeClient(node, m.clusterToken, 30_000);
    // ?tail=N asks the node for the last N bytes only; ?offset=N for what follows byte N (live follow).
    const tail = intQuery(ctx, 'tail', 0, 1 << 30);
    const offset = intQuery(ctx, 'offset', 0, Number.MAX_SAFE_INTEGER);
    const range = tail > 0 ? `bytes=-${tail}` : offset > 0 ? `bytes=${offset}-` : null;
    const path = `/logs/${encodeURIComponent(run.project)}/${encodeURIComponent(run.spider)}/${encodeURIComponent(run.job)}.log`;
    const res = await client.raw(path, undefined, range ? { Range: range } : {}).catch(() => null);
    if (res && res.status === 416) {
      ctx.set('X-Log-Size', String(offset));
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = '';
      return;
    }
    if (!res || !res.ok) {
      ctx.status = 404;
      ctx.body = { error: `node ${node.name} has no log for run ${run.job}${res ? ` (HTTP ${res.status})` : ' (unreachable)'}` };
      return;
    }
    const total = /\/(\d+)$/.exec(res.headers.get('Content-Range') ?? '')?.[1] ?? res.headers.get('Content-Length');
    if (total) ctx.set('X-Log-Size', total);
    ctx.type = 'text/plain; charset=utf-8';
    ctx.body = Buffer.from(await res.arrayBuffer());
  });

  // The run's items (JSON lines), its Scrapy stats and its error records, fetched from its node.
  const fromNode = (kind: 'items' | 'stats' | 'errors') => async (ctx: Context) => {
    const found = await runForRawRoute(ctx);
    if (!found) return;
    const { run, node } = found;
    const p = `${encodeURIComponent(run.project)}/${encodeURIComponent(run.spider)}/${encodeURIComponent(run.job)}`;
    const path = kind === 'items' ? `/items/${p}.jl` : kind === 'stats' ? `/logs/${p}.json` : `/errors.json?job=${encodeURIComponent(run.job)}&limit=50`;
    const res = await new NodeClient(node, m.clusterToken, 30_000).raw(path).catch(() => null);
    if (!res || !res.ok) {
      ctx.status = 404;
      ctx.body = { error: `node ${node.name} has no ${kind} for run ${run.job}${res ? ` (HTTP ${res.status})` : ' (unreachable)'}` };
      return;
    }
    ctx.type = kind === 'items' ? 'application/x-ndjson; charset=utf-8' : 'application/json';
    if (kind === 'items') ctx.set('Content-Disposition', `inline; filename="${run.job}.jl"`);
    ctx.body = Buffer.from(await res.arrayBuffer());
  };
  router.get('/api/runs/:job/items', fromNode('items'));
  router.get('/api/runs/:job/stats', fromNode('stats'));
  router.get('/api/runs/:job/errors', fromNode('errors'));

  router.get('/api/runs/:job/log/stream', async (ctx) => {
    try {
      requireRole(ctx, 'viewer');
    } catch (e) {
      ctx.status = (e as HttpError).status;
      ctx.body = { error: (e as Error).message };
      return;
    }
    if (!await m.runs.byJob(ctx.params.job!)) {
      ctx.status = 404;
      ctx.body = { error: `run '${ctx.params.job}' not found` };
      return;
    }
    streamRunLog(m, ctx, ctx.params.job!);
  });

  // ---- schedules ----
  const scheduleInput = async (ctx: Context): Promise<ScheduleInput> => parseScheduleInput(m, await readJson(ctx));
  const findSchedule = async (ctx: Context): Promise<ScheduleRow> => {
    const s = /^\d{1,15}$/.test(ctx.params.id ?? '') ? await m.schedules.get(Number(ctx.params.id)) : undefined;
    if (!s) throw new HttpError(404, `schedule '${ctx.params.id}' not found`);
    return s;
  };
  const withNext = (s: ScheduleRow) => scheduleView(s, s.enabled ? m.scheduler.nextOccurrences(s, 5) : null);
  r('get', '/api/schedules', async (ctx) => {
    requireRole(ctx, 'viewer');
    return { schedules: (await m.schedules.all()).map(withNext) };
  });
  r('post', '/api/schedules', async (ctx) => {
    requireRole(ctx, 'operator');
    const s = await m.schedules.create(await scheduleInput(ctx));
    await m.scheduler.reload(s.id);
    ctx.status = 201;
    return { schedule: withNext(s) };
  });
  r('get', '/api/schedules/:id', async (ctx) => {
    requireRole(ctx, 'viewer');
    const s = await findSchedule(ctx);
    return { schedule: withNext(s), fires: await m.schedules.fires(s.id), runs: await viewRuns((await m.runs.query({ schedule_id: s.id, limit: 20, offset: 0 })).runs) };
  });
  r('put', '/api/schedules/:id', async (ctx) => {
    requireRole(ctx, 'operator');
    const s = await findSchedule(ctx);
    const updated = await m.schedules.update(s.id, await scheduleInput(ctx));
    await m.scheduler.reload(s.id);
    if (!updated) throw new HttpError(404, `schedule '${ctx.params.id}' not found`);
    return { schedule: withNext(updated) };
  });
  r('delete', '/api/schedules/:id', async (ctx) => {
    requireRole(ctx, 'operator');
    const s = await findSchedule(ctx);
    await m.schedules.remove(s.id);
    await m.scheduler.reload(s.id);
    return { ok: true };
  });
  r('post', '/api/schedules/:id/run', async (ctx) => {
    const user = requireRole(ctx, 'operator');
    const s = await findSchedule(ctx);
    return { runs: await viewRuns(await m.scheduler.runNow(s.id, user.username)) };
  });
  r('post', '/api/cron/preview', async (ctx) => {
    requireRole(ctx, 'viewer');
    const f = new Fields(await readJson(ctx));
    const cron = f.requiredString('cron', 200).trim();
    try {
      const parsed = parseCron(cron, f.string('timezone', { max: 100 }));
      return { valid: true, description: describeCron(cron), next: parsed.nextRuns(f.number('count', 5, { min: 1, max: 50, integer: true })).map((d) => d.toISOString()) };
    } catch (e) {
      return { valid: false, error: (e as Error).message };
    }
  });

  // ---- users and tokens ----
  r('get', '/api/me', async (ctx) => {
    const user = requireRole(ctx, 'viewer');
    return { user, tokens: await m.users.tokens(user.id) };
  });
  r('post', '/api/tokens', async (ctx) => {
    const user = requireRole(ctx, 'viewer');
    const f = new Fields(await readJson(ctx));
    ctx.status = 201;
    return { token: await m.users.createToken(user.id, f.requiredString('name', 100)), note: 'shown once: store it now' };
  });
  r('get', '/api/users', async (ctx) => {
    requireRole(ctx, 'admin');
    return { users: await m.users.all() };
  });
  r('post', '/api/users', async (ctx) => {
    requireRole(ctx, 'admin');
    const f = new Fields(await readJson(ctx));
    ctx.status = 201;
    return { user: await m.users.create(f.requiredString('username', 64), f.requiredString('password', 200), f.oneOf<Role>('role', ROLES, 'viewer')) };
  });
}

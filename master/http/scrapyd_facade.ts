import type Router from '@koa/router';
import type { Context } from 'koa';
import { ApiError, scrapydEndpoint } from '../../common/http/scrapyd_protocol.ts';
import { checkName, decodeSchedule, required } from '../../common/http/scrapyd_params.ts';
import { policyFromScheduleParams } from '../runs/run_policy.ts';
import { BodyRejected, readParams, scrapydLimits, type Params } from '../../common/http/request_params.ts';
import { sanitizeVersion } from '../../common/names.ts';
import { formatScrapydTime } from '../../common/scrapyd_time.ts';
import type { Master } from '../master.ts';
import { PackageRejected } from '../packages/package_repo.ts';
import { DispatchError } from '../runs/dispatcher.ts';
import { scrapydJobRows } from './scrapyd_job_rows.ts';
import { HttpError } from './input.ts';
import { requireRole } from './auth.ts';
import type { Role } from '../auth/users.ts';

const secs = (ms: number | null) => (ms === null ? null : formatScrapydTime(ms / 1000));

/**
 * Scrapyd's API on the master, answering for the whole cluster: scrapyd-deploy pointed here
 * deploys to every node, schedule.json dispatches with least load, and ScrapydWeb sees one big
 * Scrapyd. Reads need a viewer, changes an operator (HTTP basic auth from scrapy.cfg works).
 */
export function mountScrapydFacade(router: Router, m: Master): void {
  const nodeName = () => m.config.nodeName ?? 'spiderplane-master';
  const endpoint = (path: string, method: 'GET' | 'POST', role: Role, h: (p: Params, ctx: Context) => Promise<Record<string, unknown>> | Record<string, unknown>) =>
    router.all(path, async (ctx) => {
      // Credentials first: a 401 (with its WWW-Authenticate) rather than an error envelope.
      if (ctx.method !== 'OPTIONS') {
        try {
          requireRole(ctx, role);
        } catch (e) {
          ctx.status = (e as HttpError).status;
          ctx.set('Content-Type', 'text/plain; charset=utf-8');
          ctx.body = (e as Error).message;
          return;
        }
      }
      return scrapydEndpoint(nodeName, method, async (c) => {
        try {
          return await h(await readParams(c, scrapydLimits(m.config.maxUploadBytes)), c);
        } catch (e) {
          // A refused body is answered as Scrapyd answers errors; the connection closes after it.
          if (e instanceof BodyRejected) throw new ApiError(e.message);
          if (e instanceof DispatchError || e instanceof PackageRejected) throw new ApiError(e.message);
          throw e;
        }
      })(ctx);
    });

  endpoint('/daemonstatus.json', 'GET', 'viewer', async () => {
    const c = await m.runs.counts();
    return { pending: (c.pending ?? 0) + (c.dispatching ?? 0), running: c.running ?? 0, finished: (c.finished ?? 0) + (c.lost ?? 0) + (c.failed ?? 0) };
  });

  endpoint('/addversion.json', 'POST', 'operator', async (p, ctx) => {
    const project = checkName('project', required(p.get('project'), 'project'));
    const version = required(p.get('version'), 'version');
    const egg = p.files.get('egg');
    if (!egg) {
      if (p.get('egg') !== undefined) throw new ApiError('egg is not a ZIP file (if using curl, use egg=@path not egg=path)');
      throw new ApiError("'egg' parameter is required");
    }
    const stored = checkName('version', sanitizeVersion(version));
    const user = requireRole(ctx, 'operator');
    await m.repo.add(project, stored, egg, user.username);
    const online = (await m.nodes.all()).filter((n) => n.status === 'online');
    const deployment = await (await m.deployer.deploy(project, stored, online, 'upload')).done;
    const ok = deployment.targets.filter((t) => t.state === 'ok');
    const failed = deployment.targets.filter((t) => t.state === 'failed');
    if (online.length > 0 && ok.length === 0) {
      throw new ApiError(`no node accepted the version: ${failed.map((t) => `${t.node}: ${t.message}`).join('; ')}`);
    }
    const spiders = (await m.repo.spiders(project, stored))?.length ?? ok[0]?.spiders ?? 0;
    return { project, version, spiders, nodes: { ok: ok.map((t) => t.node), failed: failed.map((t) => ({ node: t.node, message: t.message })) } };
  });

  endpoint('/schedule.json', 'POST', 'operator', async (p, ctx) => {
    const decoded = decodeSchedule(p);
    const { project, spider, version, args, settings, priority, jobid } = decoded;
    const [run] = await m.dispatcher.dispatch({
      project, spider, version, args, settings, priority, target: { mode: 'auto' }, scheduleId: null,
      retriesLeft: m.config.maxRetries, createdBy: requireRole(ctx, 'operator').username, jobid: jobid ?? undefined,
      policy: policyFromScheduleParams(decoded),
    });
    if (!run || run.state === 'failed') throw new ApiError(run?.note ?? 'dispatch failed');
    return { jobid: run.job };
  });

  endpoint('/cancel.json', 'POST', 'operator', async (p) => {
    const project = required(p.get('project'), 'project');
    const job = required(p.get('job'), 'job');
    if ((await m.repo.versions(project)).length === 0) throw new ApiError(`project '${project}' not found`);
    const run = await m.runs.byJob(job);
    if (!run || run.project !== project) return { prevstate: null };
    const active = run.state === 'dispatching' || run.state === 'pending' || run.state === 'running';
    const prev = active ? await m.tracker.cancel(run, p.get('signal')) : null;
    return { prevstate: prev ?? (active ? (run.state === 'running' ? 'running' : 'pending') : null) };
  });

  endpoint('/status.json', 'GET', 'viewer', async (p) => {
    const job = required(p.get('job'), 'job');
    const project = p.get('project');
    if (project !== undefined && (await m.repo.versions(project)).length === 0) throw new ApiError(`project '${project}' not found`);
    const run = await m.runs.byJob(job);
    if (!run || (project !== undefined && run.project !== project)) return { currstate: null };
    return { currstate: run.state === 'dispatching' ? 'pending' : run.state === 'lost' || run.state === 'failed' ? 'finished' : run.state };
  });

  endpoint('/listprojects.json', 'GET', 'viewer', async () => ({ projects: await m.repo.projects() }));
  endpoint('/listversions.json', 'GET', 'viewer', async (p) => ({ versions: await m.repo.versions(required(p.get('project'), 'project')) }));
  endpoint('/listspiders.json', 'GET', 'viewer', async (p) => {
    const project = required(p.get('project'), 'project');
    if ((await m.repo.versions(project)).length === 0) throw new ApiError(`project '${project}' not found`);
    const requested = p.get('_version');
    const version = requested === undefined ? (await m.repo.newest(project))! : sanitizeVersion(requested);
    if (!(await m.repo.get(project, version))) throw new ApiError(`version '${requested}' not found`);
    return { spiders: (await m.repo.spiders(project, version)) ?? [] };
  });

  // Scrapyd's fields (pid from the node's last heartbeat; log_url/items_url are paths this master
  // serves, streamed from the node), plus `node` and the finished run's `outcome`.
  endpoint('/listjobs.json', 'GET', 'viewer', async (p) => {
    const project = p.get('project');
    if (project !== undefined && (await m.repo.versions(project)).length === 0) throw new ApiError(`project '${project}' not found`);
    const rows = await scrapydJobRows(m, project);
    return {
      pending: rows.pending.map(({ run: r }) => ({ id: r.job, project: r.project, spider: r.spider, version: r.version, settings: JSON.parse(r.settings) as unknown, args: JSON.parse(r.args) as unknown, node: r.node })),
      running: rows.running.map(({ run: r, pid, logUrl, itemsUrl }) => ({ id: r.job, project: r.project, spider: r.spider, pid, start_time: secs(r.started_at), log_url: logUrl, items_url: itemsUrl, node: r.node })),
      finished: rows.finished.map(({ run: r, logUrl, itemsUrl }) => ({ id: r.job, project: r.project, spider: r.spider, start_time: secs(r.started_at), end_time: secs(r.ended_at), log_url: logUrl, items_url: itemsUrl, node: r.node, outcome: r.outcome })),
    };
  });

  endpoint('/delversion.json', 'POST', 'operator', async (p) => {
    const project = required(p.get('project'), 'project');
    const version = required(p.get('version'), 'version');
    if (!(await m.repo.deleteVersion(project, sanitizeVersion(version)))) throw new ApiError(`version '${version}' not found`);
    await m.deployer.deleteEverywhere(project, sanitizeVersion(version));
    return {};
  });

  endpoint('/delproject.json', 'POST', 'operator', async (p) => {
    const project = required(p.get('project'), 'project');
    if (!(await m.repo.deleteProject(project))) throw new ApiError(`project '${project}' not found`);
    await m.deployer.deleteEverywhere(project, null);
    return {};
  });
}

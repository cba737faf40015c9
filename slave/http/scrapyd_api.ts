import type Router from '@koa/router';
import type { Context } from 'koa';
import { formatScrapydTime } from '../../common/scrapyd_time.ts';
import { ApiError, scrapydEndpoint } from '../../common/http/scrapyd_protocol.ts';
import { decodeSchedule, required } from '../../common/http/scrapyd_params.ts';
import { BodyRejected, readParams, scrapydLimits, type Params } from '../../common/http/request_params.ts';
import { itemsUrl, logUrl, parseSignal, type SlaveCore } from '../slave_core.ts';

// Decoding lives in the shared protocol module; these names stay importable from here.
export { parsePriority, parseSettings, spiderArgs } from '../../common/http/scrapyd_params.ts';

/** Scrapyd 1.6's JSON API, same paths, parameters, shapes and messages. */
export function mountScrapydApi(router: Router, core: SlaveCore, nodeName: () => string, maxUploadBytes: number, finishedToKeep: number): void {
  const limits = scrapydLimits(maxUploadBytes);
  // A refused body is answered as Scrapyd answers errors (HTTP 200 envelope); the connection closes after it.
  const params = (ctx: Context) => readParams(ctx, limits).catch((e: unknown) => {
    throw e instanceof BodyRejected ? new ApiError(e.message) : e;
  });
  const get = (path: string, h: (p: Params, ctx: Context) => Promise<Record<string, unknown>> | Record<string, unknown>) =>
    router.all(path, scrapydEndpoint(nodeName, 'GET', async (ctx) => h(await params(ctx), ctx)));
  const post = (path: string, h: (p: Params, ctx: Context) => Promise<Record<string, unknown>> | Record<string, unknown>) =>
    router.all(path, scrapydEndpoint(nodeName, 'POST', async (ctx) => h(await params(ctx), ctx)));

  get('/daemonstatus.json', () => {
    // Scrapyd counts the finished jobs its launcher keeps, which never exceeds finished_to_keep.
    const c = core.jobs.counts();
    return { pending: c.pending, running: c.running, finished: Math.min(c.finished, finishedToKeep) };
  });

  post('/addversion.json', async (p) => {
    const project = required(p.get('project'), 'project');
    const version = required(p.get('version'), 'version');
    const file = p.files.get('egg');
    if (!file) {
      if (p.get('egg') !== undefined) throw new ApiError('egg is not a ZIP file (if using curl, use egg=@path not egg=path)');
      throw new ApiError("'egg' parameter is required");
    }
    const spiders = await core.addVersion(project, version, file);
    return { project, version, spiders };
  });

  post('/schedule.json', (p) => ({ jobid: core.schedule(decodeSchedule(p)) }));

  post('/cancel.json', (p) => {
    const project = required(p.get('project'), 'project');
    const job = required(p.get('job'), 'job');
    return { prevstate: core.cancel(project, job, parseSignal(p.get('signal'))) };
  });

  get('/status.json', (p) => {
    const job = required(p.get('job'), 'job');
    return { currstate: core.status(job, p.get('project')) };
  });

  get('/listprojects.json', () => ({ projects: core.packages.projects() }));

  get('/listversions.json', (p) => {
    const project = required(p.get('project'), 'project');
    return { versions: core.packages.versions(project) };
  });

  get('/listspiders.json', (p) => {
    const project = required(p.get('project'), 'project');
    return { spiders: core.listSpiders(project, p.get('_version')) };
  });

  get('/listjobs.json', async (p) => {
    const project = p.get('project');
    if (project !== undefined) core.requireProject(project);
    const pending = core.jobs.pending(project).map((r) => ({
      id: r.id, project: r.project, spider: r.spider, version: r.version,
      settings: JSON.parse(r.settings) as Record<string, string>, args: JSON.parse(r.args) as Record<string, string>,
    }));
    const running = await Promise.all(core.jobs.running(project).map(async (r) => ({
      id: r.id, project: r.project, spider: r.spider, pid: r.pid,
      start_time: r.start_time === null ? null : formatScrapydTime(r.start_time),
      ...(await core.runningUrls(r)),
    })));
    const finished = core.jobs.finished(finishedToKeep, project).map((r) => ({
      id: r.id, project: r.project, spider: r.spider,
      start_time: r.start_time === null ? null : formatScrapydTime(r.start_time),
      end_time: r.end_time === null ? null : formatScrapydTime(r.end_time),
      log_url: r.log_exists ? logUrl(r) : null,
      items_url: r.items_exists ? itemsUrl(r) : null,
    }));
    return { pending, running, finished };
  });

  post('/delversion.json', async (p) => {
    await core.deleteVersion(required(p.get('project'), 'project'), required(p.get('version'), 'version'));
    return {};
  });

  post('/delproject.json', async (p) => {
    await core.deleteProject(required(p.get('project'), 'project'));
    return {};
  });
}

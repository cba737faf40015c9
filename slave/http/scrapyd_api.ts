import type Router from '@koa/router';
import type { Context } from 'koa';
import { formatScrapydTime } from '../../common/scrapyd_time.ts';
import { ApiError, scrapydEndpoint, sendJson } from '../../common/http/scrapyd_protocol.ts';
import { decodeSchedule, required } from '../../common/http/scrapyd_params.ts';
import { pyJson } from '../../common/pyjson.ts';
import { BodyRejected, readParams, scrapydLimits, type Params } from '../../common/http/request_params.ts';
import { itemsUrl, logUrl, parseSignal, type SlaveCore } from '../slave_core.ts';

// Decoding lives in the shared protocol module; these names stay importable from here.
export { parsePriority, parseSettings, spiderArgs } from '../../common/http/scrapyd_params.ts';

/** Finished jobs read and serialised per turn of the event loop when listjobs.json lists more. */
export const LISTJOBS_PAGE = 2000;

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

  get('/listjobs.json', async (p, ctx) => {
    const project = p.get('project');
    if (project !== undefined) core.requireProject(project);
    const pending = core.jobs.pending(project).map((r) => ({
      id: r.id, project: r.project, spider: r.spider, version: r.version,
      settings: JSON.parse(r.settings) as Record<string, string>, args: JSON.parse(r.args) as Record<string, string>,
    }));
    const running = await Promise.all(core.jobs.running(project).map(async (r) => ({
      // pid 0: its keeper has not said it yet (a few ms); null, never 0 — a client that signals
      // process group 0 would signal itself.
      id: r.id, project: r.project, spider: r.spider, pid: r.pid !== null && r.pid > 0 ? r.pid : null,
      start_time: r.start_time === null ? null : formatScrapydTime(r.start_time),
      ...(await core.runningUrls(r)),
    })));
    const finishedView = (r: ReturnType<typeof core.jobs.finished>[number]) => ({
      id: r.id, project: r.project, spider: r.spider,
      start_time: r.start_time === null ? null : formatScrapydTime(r.start_time),
      end_time: r.end_time === null ? null : formatScrapydTime(r.end_time),
      log_url: r.log_exists ? logUrl(r) : null,
      items_url: r.items_exists ? itemsUrl(r) : null,
    });
    if (finishedToKeep <= LISTJOBS_PAGE) return { pending, running, finished: core.jobs.finished(finishedToKeep, project).map(finishedView) };
    // A long finished list (--finished-to-keep 100000) is read and serialised a page at a time, with
    // a turn of the event loop between pages, so other requests are not held up behind it; the
    // body is the same bytes the envelope would give.
    const pages: string[] = [];
    for (let offset = 0; offset < finishedToKeep; offset += LISTJOBS_PAGE) {
      const rows = core.jobs.finished(Math.min(LISTJOBS_PAGE, finishedToKeep - offset), project, offset);
      if (rows.length) pages.push(pyJson(rows.map(finishedView)).slice(1, -1));
      if (rows.length < LISTJOBS_PAGE) break;
      await new Promise<void>((r) => setImmediate(r));
    }
    const head = pyJson({ pending, running, finished: [] }).slice(0, -3); // '{"pending": […], "running": […], "finished": '
    sendJson(ctx, `${head}[${pages.join(', ')}], "status": "ok", "node_name": ${pyJson(nodeName())}}`);
    return {};
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

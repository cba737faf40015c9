import type Router from '@koa/router';
import type { Context } from 'koa';
import { readdir, stat } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { nameProblem } from '../../common/names.ts';
import { renderDirectoryListing, renderHomePage, renderJobsPage, type HtmlJobRow } from './html_views.ts';
import { NOT_FOUND_HTML } from '../../common/http/scrapyd_protocol.ts';
import { itemsUrl, logUrl, type SlaveCore } from '../slave_core.ts';
import type { LogStats } from '../logs/log_stats.ts';
import { folderInside, openSpiderFile } from '../jobs/spider_file.ts';

const VERSION = '1.6.0-spiderplane';

function notFound(ctx: Context): void {
  ctx.status = 404;
  ctx.set('Content-Type', 'text/html; charset=utf-8');
  ctx.body = NOT_FOUND_HTML;
}

function html(ctx: Context, body: string): void {
  ctx.set('Content-Type', 'text/html; charset=utf-8');
  ctx.body = body;
}

/**
 * Maps a URL path under /logs or /items to a file or folder inside root. Every segment is checked
 * like a name (no '..', no NUL, no separators), and the result must still lie inside root.
 */
function safePath(root: string, segments: string[]): string | null {
  for (const s of segments) if (nameProblem(s) !== null) return null;
  const full = resolve(root, ...segments);
  return full === root || full.startsWith(root + sep) ? full : null;
}

function splitPath(rest: string): string[] | null {
  try {
    return rest.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
  } catch {
    return null;
  }
}

/**
 * One byte range of a Range header ("bytes=A-B", "bytes=A-", "bytes=-N"), so a log can be tailed
 * or followed without sending all of it. null: no (usable) Range header, send everything.
 */
export function byteRange(header: string, size: number): [number, number] | 'unsatisfiable' | null {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const n = Number(m[2]);
    return size === 0 ? null : [Math.max(0, size - n), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return [start, end];
}

/** Scrapyd's HTML: the home page, /jobs, and the /logs/ and /items/ trees (files and listings). */
export function mountFileRoutes(router: Router, core: SlaveCore, stats: LogStats, nodeName: () => string, finishedToKeep: number) {
  router.get('/', (ctx) => {
    html(ctx, renderHomePage({ nodeName: nodeName(), projects: core.packages.projects(), version: VERSION, logsEnabled: true, itemsEnabled: true, basePath: ctx.get('X-Forwarded-Prefix') }));
  });

  router.get('/jobs', async (ctx) => {
    const toDate = (t: number | null) => (t === null ? null : new Date(t * 1000));
    const pending: HtmlJobRow[] = core.jobs.pending().map((r) => ({ project: r.project, spider: r.spider, job: r.id, pid: null, start: null, end: null, logUrl: null, itemsUrl: null }));
    const running: HtmlJobRow[] = await Promise.all(core.jobs.running().map(async (r) => {
      const urls = await core.runningUrls(r);
      return { project: r.project, spider: r.spider, job: r.id, pid: r.pid, start: toDate(r.start_time), end: null, logUrl: urls.log_url, itemsUrl: urls.items_url };
    }));
    const finished: HtmlJobRow[] = core.jobs.finished(finishedToKeep).map((r) => ({
      project: r.project, spider: r.spider, job: r.id, pid: null, start: toDate(r.start_time), end: toDate(r.end_time),
      logUrl: r.log_exists ? logUrl(r) : null, itemsUrl: r.items_exists ? itemsUrl(r) : null,
    }));
    html(ctx, renderJobsPage({ pending, running, finished, nodeName: nodeName(), basePath: ctx.get('X-Forwarded-Prefix'), itemsEnabled: true }));
  });

  const serveTree = (top: 'logs' | 'items', root: string) => async (ctx: Context) => {
    const rest = ctx.path.slice(top.length + 1);
    const segments = splitPath(rest);
    if (!segments) return notFound(ctx);
    // LogParser's files, computed from our own log parsing (no LogParser process needed).
    if (top === 'logs' && segments.length === 1 && segments[0] === 'stats.json') {
      ctx.set('Content-Type', 'application/json');
      ctx.body = JSON.stringify(await stats.all());
      return;
    }
    // /logs/P/S/JOB.json: LogParser's per-job stats.
    if (top === 'logs' && segments.length === 3 && segments[2]!.endsWith('.json')) {
      const body = await stats.forJob(segments[0]!, segments[1]!, segments[2]!.slice(0, -'.json'.length));
      if (body) {
        ctx.set('Content-Type', 'application/json');
        ctx.body = JSON.stringify(body);
        return;
      }
    }
    const path = safePath(root, segments);
    if (!path) return notFound(ctx);
    const found = await stat(path).catch(() => null);
    if (!found) return notFound(ctx);
    if (found.isDirectory()) {
      // Spiders own their items folders: a symlinked folder must not lead the listing out of the tree.
      if (!(await folderInside(path, root))) return notFound(ctx);
      if (!ctx.path.endsWith('/')) {
        ctx.redirect(ctx.path + '/');
        return;
      }
      const names = await readdir(path, { withFileTypes: true });
      const entries = await Promise.all(names
        .filter((d) => d.isFile() || d.isDirectory())
        .map(async (d) => ({ name: d.name, isDir: d.isDirectory(), size: d.isFile() ? (await stat(join(path, d.name)).catch(() => null))?.size ?? 0 : 0 })));
      html(ctx, renderDirectoryListing({ urlPath: ctx.url, entries }));
      return;
    }
    // Read through a descriptor that is a regular file inside the tree (no symlink, FIFO or device
    // a spider may have put there), and stream from that very descriptor.
    const fh = await openSpiderFile(path, root);
    if (!fh) return notFound(ctx);
    const info = await fh.stat().catch(() => null);
    if (!info) {
      await fh.close();
      return notFound(ctx);
    }
    ctx.set('Content-Type', path.endsWith('.json') ? 'application/json' : 'text/plain; charset=utf-8');
    ctx.set('Accept-Ranges', 'bytes');
    // The size is taken once: a log that grows while it is sent is sent as it was.
    const range = byteRange(ctx.get('Range'), info.size);
    const [start, end] = range === 'unsatisfiable' ? [0, -1] : range ?? [0, info.size - 1];
    if (end < start) await fh.close(); // nothing to stream
    if (range === 'unsatisfiable') {
      ctx.status = 416;
      ctx.set('Content-Range', `bytes */${info.size}`);
      ctx.body = '';
      return;
    }
    if (range) {
      ctx.status = 206;
      ctx.set('Content-Range', `bytes ${start}-${end}/${info.size}`);
    }
    if (end < start) {
      ctx.body = '';
      return;
    }
    ctx.length = end - start + 1;
    ctx.body = fh.createReadStream({ start, end });
  };
  const logs = serveTree('logs', core.files.logsDir);
  const items = serveTree('items', core.files.itemsDir);
  // Trees of arbitrary depth are matched here rather than by router patterns.
  return async (ctx: Context, next: () => Promise<unknown>) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    if (ctx.path === '/logs' || ctx.path.startsWith('/logs/')) return logs(ctx);
    if (ctx.path === '/items' || ctx.path.startsWith('/items/')) return items(ctx);
    return next();
  };
}

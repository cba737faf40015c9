import type { Context, Next } from 'koa';
import { NOT_FOUND_HTML } from '../../common/http/scrapyd_protocol.ts';
import { nameProblem } from '../../common/names.ts';
import { esc, renderDirectoryListing, renderJobsPage, type DirEntry, type HtmlJobRow } from '../../slave/http/html_views.ts';
import { jobKeyFromLogFile, logParserStatsFile, LOGPARSER_VERSION, type LogParserStatsFile } from '../../slave/logs/logparser_json.ts';
import type { Master } from '../master.ts';
import { NodeUnreachable } from '../nodes/node_client.ts';
import { openNodeFile, readNodeText } from '../nodes/node_files.ts';
import { mergeListings, parseDirectoryListing } from '../nodes/node_listing.ts';
import type { NodeRow } from '../nodes/node_registry.ts';
import { requireRole } from './auth.ts';
import { HttpError } from './input.ts';
import { publicUrl } from './proxy.ts';
import { scrapydJobRows } from './scrapyd_job_rows.ts';

// The HTML side of Scrapyd on the master, for the whole cluster, as ScrapydWeb reads it from a
// Scrapyd: /jobs, the /logs/ and /items/ trees (listings merged from every node, each file
// streamed from the node that holds it) and LogParser's /logs/stats.json and /logs/P/S/JOB.json.
//
// Who gets what at /jobs: a request with an Authorization header (basic auth of a user or a
// Bearer API token — what ScrapydWeb and scripts send) gets Scrapyd's Jobs page; a browser with
// a session cookie and no Authorization header gets the web UI's jobs list. /logs/ and /items/
// are not web UI paths: any viewer gets them, by either kind of credentials.

const LISTING_MAX_BYTES = 4 * 1024 * 1024;
const STATS_MAX_BYTES = 32 * 1024 * 1024;

function notFound(ctx: Context): void {
  ctx.status = 404;
  ctx.set('Content-Type', 'text/html; charset=utf-8');
  ctx.body = NOT_FOUND_HTML;
}

/** A node that is down: a page that says which and why, at once. */
function nodeDown(ctx: Context, node: NodeRow, why: string): void {
  ctx.status = 503;
  ctx.set('Content-Type', 'text/html; charset=utf-8');
  ctx.set('Retry-After', '30');
  ctx.body = `<html>\n  <head><title>503 - Node unavailable</title></head>\n  <body>\n    <h1>Node unavailable</h1>\n    <p>This file is on node ${esc(node.name)} (${esc(node.url)}), which is not answering: ${esc(why)}.</p>\n  </body>\n</html>\n`;
}

function hasApiCredentials(ctx: Context): boolean {
  return /^(basic|bearer)\s/i.test(ctx.get('Authorization'));
}

/** A viewer, or the 401/403 a Scrapyd client understands (plain text, WWW-Authenticate). */
function allowed(ctx: Context): boolean {
  try {
    requireRole(ctx, 'viewer');
    return true;
  } catch (e) {
    if (!(e instanceof HttpError)) throw e;
    ctx.status = e.status;
    ctx.set('Content-Type', 'text/plain; charset=utf-8');
    ctx.body = e.message;
    return false;
  }
}

function segmentsOf(rest: string): string[] | null {
  try {
    const segments = rest.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
    return segments.every((s) => nameProblem(s) === null) ? segments : null;
  } catch {
    return null;
  }
}

const quotePath = (segments: string[]) => segments.map((s) => encodeURIComponent(s)).join('/');

export function mountScrapydFiles(m: Master) {
  const nodeName = () => m.config.nodeName ?? 'spiderplane-master';
  const answering = async () => (await m.nodes.all()).filter((n) => n.status !== 'offline');

  const jobsPage = async (ctx: Context) => {
    const rows = await scrapydJobRows(m);
    const html = (r: (typeof rows.running)[number]): HtmlJobRow => ({
      project: r.run.project, spider: r.run.spider, job: r.run.job, pid: r.pid,
      start: r.run.started_at === null ? null : new Date(r.run.started_at), end: r.run.ended_at === null || r.run.started_at === null ? null : new Date(r.run.ended_at),
      logUrl: r.logUrl, itemsUrl: r.itemsUrl,
    });
    ctx.set('Content-Type', 'text/html; charset=utf-8');
    ctx.body = renderJobsPage({
      pending: rows.pending.map(html), running: rows.running.map(html), finished: rows.finished.map(html),
      nodeName: nodeName(), basePath: (ctx.state.prefix as string | undefined) ?? '', itemsEnabled: true,
    });
  };

  /**
   * Every answering node's listing of a folder, merged; a node that fails is left out. null: no
   * node has the folder; 'down': no node answered at all.
   */
  const mergedListing = async (top: 'logs' | 'items', segments: string[]): Promise<DirEntry[] | null | 'down'> => {
    const path = `/${top}/${segments.length ? quotePath(segments) + '/' : ''}`;
    const nodes = await answering();
    const texts = await Promise.all(nodes.map((n) => readNodeText(n, m.clusterToken, path, LISTING_MAX_BYTES).catch((): undefined => undefined)));
    if (texts.every((t) => t === undefined)) return 'down';
    const found = texts.filter((t): t is string => typeof t === 'string');
    return found.length === 0 ? null : mergeListings(found.map(parseDirectoryListing));
  };

  /** LogParser's stats.json for the cluster: every node's jobs in one file. */
  const clusterStats = async (ctx: Context): Promise<LogParserStatsFile> => {
    const texts = await Promise.all((await answering()).map((n) => readNodeText(n, m.clusterToken, '/logs/stats.json', STATS_MAX_BYTES).catch(() => null)));
    const file = logParserStatsFile([], { scrapydServer: ctx.host, logsDir: '' });
    const versions = new Set<string>();
    for (const text of texts) {
      let parsed: Partial<LogParserStatsFile> | null = null;
      try {
        parsed = text === null ? null : (JSON.parse(text) as Partial<LogParserStatsFile>);
      } catch {
        parsed = null;
      }
      if (!parsed || parsed.status !== 'ok' || typeof parsed.datas !== 'object' || parsed.datas === null) continue;
      if (typeof parsed.logparser_version === 'string') versions.add(parsed.logparser_version);
      for (const [project, spiders] of Object.entries(parsed.datas)) {
        for (const [spider, jobs] of Object.entries(spiders)) {
          for (const [job, entry] of Object.entries(jobs)) {
            ((file.datas[project] ??= {})[spider] ??= {})[job] = { ...entry, json_url: publicUrl(ctx, `/logs/${quotePath([project, spider, job])}.json`) };
          }
        }
      }
    }
    // The nodes' own version when they agree (each per-job JSON carries it too); else ours.
    file.logparser_version = versions.size === 1 ? [...versions][0]! : LOGPARSER_VERSION;
    return file;
  };

  /** The node that holds a job's files: the run's node, else the first node whose folder lists it. */
  const nodeFor = async (top: 'logs' | 'items', project: string, spider: string, file: string): Promise<NodeRow | null> => {
    const run = await m.runs.byJob(jobKeyFromLogFile(file));
    if (run && run.node_id !== null && run.project === project && run.spider === spider) {
      const node = await m.nodes.byId(run.node_id);
      if (node) return node;
    }
    for (const node of await answering()) {
      const text = await readNodeText(node, m.clusterToken, `/${top}/${quotePath([project, spider])}/`, LISTING_MAX_BYTES).catch(() => null);
      if (text !== null && parseDirectoryListing(text).some((e) => !e.isDir && e.name === file)) return node;
    }
    return null;
  };

  /** Streams a node's file through, with its status and the headers a client needs (ranges too). */
  const relay = async (ctx: Context, node: NodeRow, path: string) => {
    if (node.status === 'offline') return nodeDown(ctx, node, `offline since ${new Date(node.status_since).toISOString()}`);
    const range = ctx.get('Range');
    let file;
    try {
      file = await openNodeFile(node, m.clusterToken, path, range ? { Range: range } : {});
    } catch (e) {
      if (e instanceof NodeUnreachable) return nodeDown(ctx, node, e.message);
      throw e;
    }
    if (file.status === 401 || file.status === 403) {
      file.body.resume();
      return nodeDown(ctx, node, `it refused the master's credentials (HTTP ${file.status})`);
    }
    ctx.status = file.status;
    for (const h of ['content-type', 'content-length', 'content-range', 'accept-ranges', 'last-modified', 'content-encoding']) {
      const v = file.headers[h];
      if (typeof v === 'string') ctx.set(h, v);
    }
    ctx.body = file.body;
  };

  const serveTree = async (ctx: Context, top: 'logs' | 'items') => {
    const segments = segmentsOf(ctx.path.slice(top.length + 1));
    if (!segments || segments.length > 3) return notFound(ctx);
    if (top === 'logs' && segments.length === 1 && segments[0] === 'stats.json') {
      ctx.set('Content-Type', 'application/json');
      ctx.body = JSON.stringify(await clusterStats(ctx));
      return;
    }
    if (segments.length === 3) {
      const [project, spider, file] = segments as [string, string, string];
      const node = await nodeFor(top, project, spider, file);
      if (!node) return notFound(ctx);
      return relay(ctx, node, `/${top}/${quotePath(segments)}`);
    }
    const entries = await mergedListing(top, segments);
    if (entries === 'down') {
      ctx.status = 503;
      ctx.set('Content-Type', 'text/html; charset=utf-8');
      ctx.body = '<html>\n  <head><title>503 - No node answering</title></head>\n  <body>\n    <h1>No node answering</h1>\n    <p>No node of this cluster answered for its listing.</p>\n  </body>\n</html>\n';
      return;
    }
    if (!entries) return notFound(ctx);
    if (!ctx.path.endsWith('/')) return ctx.redirect(((ctx.state.prefix as string | undefined) ?? '') + ctx.path + '/');
    ctx.set('Content-Type', 'text/html; charset=utf-8');
    ctx.body = renderDirectoryListing({ urlPath: ctx.url, entries });
  };

  return async (ctx: Context, next: Next): Promise<void> => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    const p = ctx.path;
    if (p === '/jobs' && hasApiCredentials(ctx)) {
      if (allowed(ctx)) await jobsPage(ctx);
      return;
    }
    for (const top of ['logs', 'items'] as const) {
      if (p === `/${top}` || p.startsWith(`/${top}/`)) {
        if (allowed(ctx)) await serveTree(ctx, top);
        return;
      }
    }
    return next();
  };
}

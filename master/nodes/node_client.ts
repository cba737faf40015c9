import type { NodeMetrics, SlaveJob } from '../../common/types.ts';
import { freshRequest, isStaleConnection, replayableBody } from './fresh_request.ts';
import { exchange, type Answer } from './http_exchange.ts';
import { encodeSchedule, type ScheduleParams } from '../../common/http/scrapyd_params.ts';
import {
  parseAddVersion, parseCancelled, parseDaemonStatus, parseListJobs, parseNameList, parseScheduled, ResponseShapeError,
  type DaemonStatusResponse, type ListJobsResponse,
} from '../../common/http/scrapyd_responses.ts';

/** The node answered {"status": "error"}: its message is the reason. */
export class NodeApiError extends Error {}
/** The node could not be reached or did not answer in time. */
export class NodeUnreachable extends Error {}

export interface NodeTarget {
  url: string;
  username: string | null;
  password: string | null;
}

/** A node's listjobs.json, validated (see common/http/scrapyd_responses.ts). */
export type ListedJobs = ListJobsResponse;

type Json = Record<string, unknown>;

/** The credentials the master shows a node: its own basic auth when it has some, else the cluster token. */
export function nodeAuthHeaders(node: NodeTarget, clusterToken: string | null): Record<string, string> {
  if (node.username !== null && node.password !== null) {
    return { Authorization: 'Basic ' + Buffer.from(`${node.username}:${node.password}`).toString('base64') };
  }
  return clusterToken ? { Authorization: `Bearer ${clusterToken}` } : {};
}

/**
 * Speaks Scrapyd's API (plus spiderplane's extensions when present) to one node. Nodes added by
 * URL use their own basic-auth credentials; spiderplane slaves accept the cluster token. Every
 * answer is checked against the protocol's shapes (common/http/scrapyd_responses.ts), not cast.
 */
export class NodeClient {
  constructor(
    private readonly node: NodeTarget,
    private readonly clusterToken: string | null,
    private readonly timeoutMs: number,
    /** the master's offline window in seconds, told to spiderplane slaves in every request (their lease) */
    private readonly leaseSeconds: number | null = null,
  ) {}

  private headers(): Record<string, string> {
    const lease: Record<string, string> = this.leaseSeconds ? { 'X-Spiderplane-Lease': String(this.leaseSeconds) } : {};
    return { ...nodeAuthHeaders(this.node, this.clusterToken), ...lease };
  }

  url(path: string): string {
    return this.node.url.replace(/\/+$/, '') + path;
  }

  private unreachable(e: unknown, timeoutMs: number): NodeUnreachable {
    const err = e as Error & { code?: string; cause?: { code?: string } };
    const why = err.name === 'TimeoutError' ? `no answer in ${timeoutMs / 1000} s` : err.cause?.code ?? err.code ?? err.message;
    return new NodeUnreachable(`${this.node.url}: ${why}`);
  }

  /**
   * A dead pooled keep-alive connection (the request never reached the node): sent once more, on a
   * connection of its own. A stream body cannot be sent twice, and any other failure stands.
   */
  private async onceMoreIfStale(path: string, init: RequestInit, headers: Record<string, string>, timeoutMs: number, e: unknown): Promise<Response> {
    const body = replayableBody(init.body);
    if (!isStaleConnection(e) || body === false) throw this.unreachable(e, timeoutMs);
    try {
      return await freshRequest(this.url(path), { method: init.method, headers, body, timeoutMs });
    } catch (e2) {
      const why = (e2 as Error).name === 'TimeoutError' ? `no answer in ${timeoutMs / 1000} s` : (e2 as { code?: string }).code ?? (e2 as Error).message;
      throw new NodeUnreachable(`${this.node.url}: ${why} (after ${(e as { cause?: { code?: string } }).cause?.code} on a pooled connection)`);
    }
  }

  /** A request whose deadline runs until the caller has read the body (raw streams keep theirs to the end). */
  private async request(path: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<Response> {
    const headers = { ...this.headers(), ...(init.headers as Record<string, string> | undefined) };
    const timeoutMs = init.timeoutMs ?? this.timeoutMs;
    try {
      return await fetch(this.url(path), { ...init, headers, signal: AbortSignal.timeout(timeoutMs) });
    } catch (e) {
      return await this.onceMoreIfStale(path, init, headers, timeoutMs, e);
    }
  }

  /**
   * A request read to the end within its deadline. Text bodies (every call but an upload) go over
   * node:http's keep-alive pool (http_exchange.ts: heartbeats make thousands of these); a form with
   * a file goes through fetch, whose deadline timer is cleared as soon as the body is in.
   */
  private async exchange<T>(path: string, init: RequestInit & { timeoutMs?: number }, read: (status: number, text: string) => T): Promise<T> {
    const ms = init.timeoutMs ?? this.timeoutMs;
    const headers = { ...this.headers(), ...(init.headers as Record<string, string> | undefined) };
    const body = replayableBody(init.body);
    let answer: Answer;
    try {
      answer = body !== false
        ? await exchange(this.url(path), { method: init.method, headers, body, timeoutMs: ms })
        : await this.upload(path, init, headers, ms);
    } catch (e) {
      throw this.unreachable(e, ms);
    }
    // Not followed either way: credentials stay with the URL the operator gave.
    if (answer.location && answer.status >= 300 && answer.status < 400) {
      throw new NodeApiError(`${this.node.url}${path} redirects (HTTP ${answer.status}) to ${answer.location}: give the node that URL`);
    }
    return read(answer.status, answer.text);
  }

  /** A form with a file, through fetch (a stream cannot be sent twice: no retry on a stale connection). */
  private async upload(path: string, init: RequestInit, headers: Record<string, string>, ms: number): Promise<Answer> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(new DOMException(`no answer in ${ms / 1000} s`, 'TimeoutError')), ms);
    try {
      const r = await fetch(this.url(path), { ...init, headers, signal: ctl.signal, redirect: 'manual' });
      const location = r.headers.get('location');
      return { status: r.status, text: await r.text(), ...(location ? { location } : {}) };
    } finally {
      clearTimeout(timer);
    }
  }

  private json(path: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<Json> {
    return this.exchange(path, init, (status, text) => this.parseEnvelope(path, status, text));
  }

  private parseEnvelope(path: string, status: number, text: string): Json {
    if (status === 401) throw new NodeApiError(`${this.node.url} refused the credentials (HTTP 401)`);
    let body: Json;
    try {
      body = JSON.parse(text) as Json;
    } catch {
      throw new NodeApiError(`${this.node.url}${path} answered HTTP ${status} with no JSON`);
    }
    if (body.status !== 'ok') throw new NodeApiError(String(body.message ?? 'unknown error'));
    return body;
  }

  private get(path: string, params: Record<string, string> = {}): Promise<Json> {
    const qs = new URLSearchParams(params).toString();
    return this.json(qs ? `${path}?${qs}` : path);
  }

  private post(path: string, pairs: Array<[string, string]>, timeoutMs?: number): Promise<Json> {
    return this.json(path, { method: 'POST', body: new URLSearchParams(pairs), timeoutMs });
  }

  /** Runs a protocol check on an answer; a wrong shape is the node's error, with the field named. */
  private shaped<T>(path: string, body: Json, parse: (b: Json) => T): T {
    try {
      return parse(body);
    } catch (e) {
      if (e instanceof ResponseShapeError) throw new NodeApiError(`${this.node.url}${path} answered an unexpected shape: ${e.message}`);
      throw e;
    }
  }

  async daemonStatus(): Promise<DaemonStatusResponse> {
    return this.shaped('/daemonstatus.json', await this.get('/daemonstatus.json'), parseDaemonStatus);
  }

  /** spiderplane's /metrics.json, or null on a plain Scrapyd (which answers 404). */
  async metrics(): Promise<NodeMetrics | null> {
    return this.exchange('/metrics.json', {}, (status, text) => {
      if (status === 404) return null;
      let body: (NodeMetrics & { status?: string }) | null = null;
      try { body = JSON.parse(text) as NodeMetrics & { status?: string }; } catch { /* not JSON: no metrics */ }
      return body && body.status === 'ok' ? body : null;
    });
  }

  async listJobs(): Promise<ListedJobs> {
    return this.shaped('/listjobs.json', await this.get('/listjobs.json'), parseListJobs);
  }

  /** spiderplane's per-job details (exit code, items, errors); null on a plain Scrapyd. */
  async jobDetails(job: string): Promise<SlaveJob | null> {
    const r = await this.request(`/jobs.json?job=${encodeURIComponent(job)}&limit=1`);
    if (r.status === 404) return null;
    const body = (await r.json().catch(() => null)) as { status?: string; jobs?: SlaveJob[] } | null;
    return body?.status === 'ok' ? body.jobs?.[0] ?? null : null;
  }

  /** `egg` as a Blob (one made per deployment, or file-backed) is sent without copying it again per node. */
  /**
   * The dependency environment a node is building for project/version right now (its /envs.json
   * "building"), with the tail of its build log; null when none is (or the node predates them).
   */
  async envBuild(project: string, version: string, tailChars = 4000): Promise<{ key: string; log: string } | null> {
    const body = await this.get('/envs.json');
    const building = Array.isArray(body.building) ? body.building as Array<{ key?: unknown; log_url?: unknown; versions?: unknown }> : [];
    const b = building.find((x) => Array.isArray(x.versions) && (x.versions as Array<{ project?: unknown; version?: unknown }>).some((v) => v.project === project && v.version === version));
    if (!b || typeof b.key !== 'string' || typeof b.log_url !== 'string' || !b.log_url.startsWith('/envs/')) return null;
    const r = await this.request(b.log_url);
    const text = r.status === 200 ? await r.text() : '';
    return { key: b.key, log: text.slice(-tailChars) };
  }

  async addVersion(project: string, version: string, egg: Blob, timeoutMs = 300_000): Promise<number> {
    const form = new FormData();
    form.set('project', project);
    form.set('version', version);
    form.set('egg', egg, `${project}-${version}.egg`);
    return this.shaped('/addversion.json', await this.json('/addversion.json', { method: 'POST', body: form, timeoutMs }), parseAddVersion);
  }

  async schedule(p: Omit<ScheduleParams, 'jobid'> & { jobid: string }): Promise<string> {
    return this.shaped('/schedule.json', await this.post('/schedule.json', encodeSchedule(p)), parseScheduled);
  }

  async cancel(project: string, job: string, signal?: string): Promise<string | null> {
    const pairs: Array<[string, string]> = [['project', project], ['job', job]];
    if (signal) pairs.push(['signal', signal]);
    return this.shaped('/cancel.json', await this.post('/cancel.json', pairs), parseCancelled);
  }

  async listProjects(): Promise<string[]> {
    return this.shaped('/listprojects.json', await this.get('/listprojects.json'), (b) => parseNameList(b, 'listprojects.json', 'projects'));
  }
  async listVersions(project: string): Promise<string[]> {
    return this.shaped('/listversions.json', await this.get('/listversions.json', { project }), (b) => parseNameList(b, 'listversions.json', 'versions'));
  }
  async listSpiders(project: string, version?: string): Promise<string[]> {
    const body = await this.get('/listspiders.json', version === undefined ? { project } : { project, _version: version });
    return this.shaped('/listspiders.json', body, (b) => parseNameList(b, 'listspiders.json', 'spiders'));
  }
  async delVersion(project: string, version: string): Promise<void> { await this.post('/delversion.json', [['project', project], ['version', version]]); }
  async delProject(project: string): Promise<void> { await this.post('/delproject.json', [['project', project]]); }

  /** A raw GET (logs, items) streamed back to the caller. */
  async raw(path: string, timeoutMs?: number, headers: Record<string, string> = {}): Promise<Response> {
    return this.request(path, { timeoutMs, headers });
  }
}

import type { Context } from 'koa';
import { PassThrough } from 'node:stream';
import type { Master } from '../master.ts';
import { NodeClient } from '../nodes/node_client.ts';
import { ACTIVE_STATES, type RunRow } from '../runs/run_store.ts';

const POLL_MS = 1000;
const FIRST_TAIL_BYTES = 256 * 1024;
/** Scrapy stats and error records are re-read this often while a run is active (and once at its end). */
const DETAILS_EVERY_MS = 10_000;
/** At most one early heartbeat per stream this often, when the log shows more than the state does. */
const NUDGE_EVERY_MS = 2_000;
const ITEMS_SHOWN = 100;
const ITEMS_BYTES = 256 * 1024;

/** What the job page shows of a run and must follow live. */
export function runStateOf(run: RunRow, node: string | null) {
  return {
    state: run.state, outcome: run.outcome, node, active: ACTIVE_STATES.includes(run.state), items_count: run.items_count,
    error_count: run.error_count, exit_code: run.exit_code, started_at: run.started_at, ended_at: run.ended_at, note: run.note,
  };
}

/**
 * A run's page as ONE stream of server-sent events, so the browser never fetches a run detail that
 * may not exist yet (a run without a node, a stats file not written yet): every such miss stays on
 * the server and becomes an empty event.
 *   `state`  the run's fields (state, outcome, times, counts) whenever any of them changes
 *   `log`    JSON string of new log text: the tail first, then what the node's file gains (byte ranges)
 *   `stats`  { stats: LogParser stats or null } — at the start, every 10 s while active, at the end
 *   `errors` { errors: [...] | null } — with the stats
 *   `items`  { items: first 100 items | null, more } — with the stats
 *   `end`    { reason } the run is over and its log drained; the server closes the stream
 * A run still waiting for a node is followed too (state only) until it gets one.
 */
export function streamRunLog(m: Master, ctx: Context, job: string): void {
  const stream = new PassThrough();
  ctx.set('Content-Type', 'text/event-stream; charset=utf-8');
  ctx.set('Cache-Control', 'no-cache, no-transform');
  ctx.set('X-Accel-Buffering', 'no'); // nginx: do not buffer the stream
  ctx.status = 200;
  ctx.body = stream;
  ctx.req.socket.setTimeout(0);

  let offset = -1;
  let lastState = '';
  let closed = false;
  let lastWrite = Date.now();
  let detailsAt = 0;
  let nudgedAt = 0;
  let sawClose = false;
  const send = (event: string, data: unknown) => {
    if (closed) return;
    stream.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    lastWrite = Date.now();
  };
  const finish = () => {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    stream.end();
  };
  ctx.req.on('close', finish);

  const sendState = (run: RunRow, node: string | null) => {
    const s = runStateOf(run, node);
    const key = JSON.stringify(s);
    if (key !== lastState) {
      lastState = key;
      send('state', s);
    }
  };

  /** New log text from the node ('' when nothing new, or when the node did not answer). */
  const pullLog = async (client: NodeClient, run: RunRow): Promise<string> => {
    const path = `/logs/${encodeURIComponent(run.project)}/${encodeURIComponent(run.spider)}/${encodeURIComponent(run.job)}.log`;
    const res = await client.raw(path, undefined, { Range: offset < 0 ? `bytes=-${FIRST_TAIL_BYTES}` : `bytes=${offset}-` }).catch(() => null);
    if (res && (res.status === 206 || res.status === 200)) {
      const text = Buffer.from(await res.arrayBuffer()).toString('utf8');
      const total = Number(/\/(\d+)$/.exec(res.headers.get('Content-Range') ?? '')?.[1] ?? text.length);
      if (text) send('log', text);
      offset = total;
      return text;
    }
    await res?.arrayBuffer().catch(() => undefined);
    if (offset < 0 && (!res || res.status === 416 || res.status === 404)) offset = 0;
    return '';
  };

  const pullJson = async (client: NodeClient, path: string): Promise<unknown> => {
    const res = await client.raw(path).catch(() => null);
    if (!res || !res.ok) {
      await res?.arrayBuffer().catch(() => undefined);
      return null;
    }
    return res.json().catch(() => null);
  };

  /** The first items (at most ITEMS_SHOWN, read from the file's first ITEMS_BYTES) for the page's table. */
  const pullItems = async (client: NodeClient, path: string): Promise<{ items: unknown[] | null; more: boolean }> => {
    const res = await client.raw(path, undefined, { Range: `bytes=0-${ITEMS_BYTES - 1}` }).catch(() => null);
    if (!res || (res.status !== 200 && res.status !== 206)) {
      await res?.arrayBuffer().catch(() => undefined);
      return { items: null, more: false };
    }
    const text = Buffer.from(await res.arrayBuffer()).toString('utf8');
    const total = Number(/\/(\d+)$/.exec(res.headers.get('Content-Range') ?? '')?.[1] ?? text.length);
    const lines = text.split('\n');
    if (Buffer.byteLength(text) < total) lines.pop(); // cut inside a line
    const items: unknown[] = [];
    for (const line of lines) {
      if (!line.trim()) continue;
      if (items.length === ITEMS_SHOWN) return { items, more: true };
      try { items.push(JSON.parse(line)); } catch { items.push({ _raw: line.slice(0, 500) }); }
    }
    return { items, more: Buffer.byteLength(text) < total };
  };

  const pullDetails = async (client: NodeClient, run: RunRow) => {
    detailsAt = Date.now();
    const p = `${encodeURIComponent(run.project)}/${encodeURIComponent(run.spider)}/${encodeURIComponent(run.job)}`;
    const [stats, errors, items] = await Promise.all([
      pullJson(client, `/logs/${p}.json`),
      pullJson(client, `/errors.json?job=${encodeURIComponent(run.job)}&limit=50`),
      pullItems(client, `/items/${p}.jl`),
    ]);
    send('stats', { stats });
    send('errors', { errors: (errors as { errors?: unknown[] } | null)?.errors ?? null });
    send('items', items);
  };

  let timer: NodeJS.Timeout;
  const tick = async () => {
    if (closed) return;
    const run = await m.runs.byJob(job);
    if (!run) {
      send('end', { reason: 'run not found' });
      return finish();
    }
    const node = run.node_id ? await m.nodes.byId(run.node_id) : undefined;
    sendState(run, node?.name ?? run.node ?? null);
    const over = !ACTIVE_STATES.includes(run.state);
    if (node) {
      const client = new NodeClient(node, m.clusterToken, 10_000);
      const text = await pullLog(client, run);
      if (/INFO: Spider closed/.test(text)) sawClose = true;
      // The master learns a run's state from heartbeats; when the log shows the run started (or
      // closed) before a heartbeat said so, ask the node now instead of waiting for the next round.
      if (!over && ((text !== '' && run.state !== 'running') || sawClose) && Date.now() - nudgedAt > NUDGE_EVERY_MS) {
        nudgedAt = Date.now();
        m.heartbeat.poll(node.id).catch((e) => console.error('[spiderplane-master] polling a node failed:', e));
      }
      if (over || (run.state === 'running' && Date.now() - detailsAt > DETAILS_EVERY_MS)) await pullDetails(client, run);
    }
    if (closed) return;
    if (over) {
      send('end', { reason: run.state === 'finished' ? run.outcome ?? 'finished' : run.state });
      return finish();
    }
    if (Date.now() - lastWrite > 15_000) {
      stream.write(': keep-alive\n\n');
      lastWrite = Date.now();
    }
    timer = setTimeout(safeTick, POLL_MS);
  };
  // A failed round (the database closing at shutdown, say) ends this stream, never the process.
  const safeTick = () => void tick().catch((e: unknown) => {
    console.error(`[spiderplane-master] log stream of ${job}: ${(e as Error).message}`);
    finish();
  });
  timer = setTimeout(safeTick, 0);
}

import type { Context } from 'koa';
import { PassThrough } from 'node:stream';
import type { Master } from '../master.ts';
import { NodeClient } from '../nodes/node_client.ts';
import { ACTIVE_STATES } from '../runs/run_store.ts';

const POLL_MS = 1000;
const FIRST_TAIL_BYTES = 256 * 1024;

/**
 * A run's log as server-sent events: the tail first, then whatever the node's log file gains,
 * polled with byte ranges (never re-sending what was sent). Events: `log` (JSON string of new
 * text), `state` (the run's state when it changes), `end` (the run is over and its log drained).
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

  let timer: NodeJS.Timeout;
  const tick = async () => {
    if (closed) return;
    const run = m.runs.byJob(job);
    const node = run?.node_id ? m.nodes.byId(run.node_id) : undefined;
    if (!run || !node) {
      send('end', { reason: 'run not found' });
      return finish();
    }
    if (run.state !== lastState) {
      lastState = run.state;
      send('state', { state: run.state, outcome: run.outcome, items_count: run.items_count, error_count: run.error_count, exit_code: run.exit_code, started_at: run.started_at, ended_at: run.ended_at });
    }
    const client = new NodeClient(node, m.clusterToken, 10_000);
    const path = `/logs/${encodeURIComponent(run.project)}/${encodeURIComponent(run.spider)}/${encodeURIComponent(run.job)}.log`;
    const res = await client.raw(path, undefined, { Range: offset < 0 ? `bytes=-${FIRST_TAIL_BYTES}` : `bytes=${offset}-` }).catch(() => null);
    if (res && (res.status === 206 || res.status === 200)) {
      const text = Buffer.from(await res.arrayBuffer()).toString('utf8');
      const total = Number(/\/(\d+)$/.exec(res.headers.get('Content-Range') ?? '')?.[1] ?? text.length);
      if (text) send('log', text);
      offset = total;
    } else if (res && res.status === 416 && offset < 0) {
      offset = 0;
    } else {
      await res?.arrayBuffer().catch(() => undefined);
      if (offset < 0) offset = 0;
    }
    if (!ACTIVE_STATES.includes(run.state)) {
      send('end', { reason: run.state });
      return finish();
    }
    if (Date.now() - lastWrite > 15_000) {
      stream.write(': keep-alive\n\n');
      lastWrite = Date.now();
    }
    timer = setTimeout(() => void tick(), POLL_MS);
  };
  timer = setTimeout(() => void tick(), 0);
}

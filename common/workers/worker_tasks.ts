/**
 * The worker side of WorkerPool: receives a task's bytes in pieces, runs the named handler, and
 * answers with its result or its error's name and message. One task at a time per worker.
 */
import { parentPort } from 'node:worker_threads';
import type { FromWorker, ToWorker } from './worker_pool.ts';

export type TaskHandler = (args: unknown, bytes: Buffer | null) => unknown;

export function serveTasks(handlers: Record<string, TaskHandler>): void {
  const port = parentPort;
  if (!port) throw new Error('serveTasks runs in a worker thread');
  let bytes: Buffer | null = null;
  let filled = 0;
  const answer = (m: FromWorker) => port.postMessage(m);
  port.on('message', (m: ToWorker) => {
    if (m.kind === 'begin') {
      bytes = Buffer.allocUnsafe(m.size);
      filled = 0;
      return;
    }
    if (m.kind === 'chunk') {
      bytes!.set(m.bytes, filled);
      filled += m.bytes.length;
      return;
    }
    const input = bytes;
    bytes = null;
    const handler = Object.hasOwn(handlers, m.op) ? handlers[m.op] : undefined;
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown worker task '${m.op}'`);
        if (input && filled !== input.length) throw new Error(`worker task '${m.op}' got ${filled} of ${input.length} bytes`);
        return handler(m.args, input);
      })
      .then(
        (result) => answer({ kind: 'done', result }),
        (e: unknown) => answer({ kind: 'failed', name: e instanceof Error ? e.name : 'Error', message: e instanceof Error ? e.message : String(e) }),
      );
  });
  answer({ kind: 'ready' });
}

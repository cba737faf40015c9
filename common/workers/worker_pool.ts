/**
 * A small pool of worker threads for CPU-heavy work that must not run on the event loop (checking
 * and unpacking uploaded packages, hashing them).
 *
 * Guarantees:
 *  - At most `size` tasks run at once, one per worker; up to `maxQueued` more wait in arrival order.
 *    Beyond that run() rejects at once with PoolBusy, so a flood of requests can neither grow memory
 *    (a queued task holds its bytes) nor make every caller wait longer and longer.
 *  - A task's bytes reach its worker in CHUNK_BYTES pieces, each copied and transferred, with the
 *    event loop free between pieces: one structured clone of a 200 MiB upload holds the loop for
 *    ~70 ms, a piece ~3 ms.
 *  - A worker that crashes, or runs a task longer than the task timeout (counted from when the
 *    worker is ready: starting one is not the task's time), is terminated and replaced; only its
 *    own task fails. An error thrown by the task reaches the caller as WorkerTaskError with
 *    the original error's name and message.
 *  - Workers are unref'd while idle (they never keep a process alive) and exit after idleMs.
 *
 * Workers are TypeScript modules started through tsx_worker.mjs (see there why).
 */
import { Worker } from 'node:worker_threads';
import { setImmediate as yieldToLoop } from 'node:timers/promises';

export const CHUNK_BYTES = 8 * 1024 * 1024;

/** Main thread → worker. */
export type ToWorker =
  | { kind: 'begin'; size: number }
  | { kind: 'chunk'; bytes: Uint8Array }
  | { kind: 'run'; op: string; args: unknown };

/** Worker → main thread. */
export type FromWorker =
  | { kind: 'ready' }
  | { kind: 'done'; result: unknown }
  | { kind: 'failed'; name: string; message: string };

/** The pool is full: every worker busy and the queue at its limit. Retry later. */
export class PoolBusy extends Error {
  override readonly name = 'PoolBusy';
}

/** The task itself threw (in the worker): its error's name and message. */
export class WorkerTaskError extends Error {
  constructor(readonly errorName: string, message: string) {
    super(message);
    this.name = 'WorkerTaskError';
  }
}

export interface WorkerPoolOptions {
  /** The worker module (a .ts or .js file URL). */
  entry: URL;
  /** Most tasks running at once. */
  size: number;
  /** Most tasks waiting for a worker. */
  maxQueued: number;
  /** A task running longer is abandoned and its worker replaced. */
  taskTimeoutMs: number;
  /** An idle worker exits after this long. */
  idleMs: number;
}

interface Task {
  op: string;
  args: unknown;
  bytes: Uint8Array | null;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  /** The worker has loaded its module and listens. */
  ready: boolean;
  task: Task | null;
  idleTimer: NodeJS.Timeout | null;
  taskTimer: NodeJS.Timeout | null;
}

const SHIM = new URL('./tsx_worker.mjs', import.meta.url);

export class WorkerPool {
  private readonly slots = new Set<Slot>();
  private readonly queue: Task[] = [];
  private closed = false;

  constructor(private readonly opts: WorkerPoolOptions) {
    if (!(opts.size >= 1) || !(opts.maxQueued >= 0)) throw new TypeError('invalid WorkerPoolOptions');
  }

  /** Tasks running and waiting now. */
  load(): { running: number; queued: number } {
    return { running: [...this.slots].filter((s) => s.task).length, queued: this.queue.length };
  }

  /** Runs `op` in a worker with `args` (structured-cloned) and, optionally, `bytes` (sent in pieces). */
  run<T>(op: string, args: unknown, bytes: Uint8Array | null = null): Promise<T> {
    if (this.closed) return Promise.reject(new Error('the worker pool is closed'));
    const { running, queued } = this.load();
    if (running >= this.opts.size && queued >= this.opts.maxQueued) {
      return Promise.reject(new PoolBusy(`${running} tasks are running and ${queued} are waiting, the most this server takes`));
    }
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, args, bytes, resolve: resolve as (v: unknown) => void, reject });
      this.dispatch();
    });
  }

  /** Terminates every worker; running and queued tasks reject. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.queue.splice(0)) t.reject(new Error('the worker pool is closed'));
    await Promise.all([...this.slots].map((s) => this.retire(s, new Error('the worker pool is closed'))));
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let slot = [...this.slots].find((s) => !s.task);
      if (!slot) {
        if (this.slots.size >= this.opts.size) return;
        slot = this.spawn();
      }
      const task = this.queue.shift()!;
      void this.start(slot, task);
    }
  }

  private spawn(): Slot {
    const worker = new Worker(SHIM, { workerData: { entry: this.opts.entry.href } });
    const slot: Slot = { worker, ready: false, task: null, idleTimer: null, taskTimer: null };
    this.slots.add(slot);
    worker.on('message', (m: FromWorker) => {
      if (m.kind !== 'ready') return this.finish(slot, m);
      slot.ready = true;
      if (slot.task) this.armTimeout(slot);
    });
    worker.on('error', (e) => void this.retire(slot, new Error(`the worker failed: ${e.message}`)));
    worker.on('exit', (code) => void this.retire(slot, new Error(`the worker exited with code ${code}`)));
    return slot;
  }

  private async start(slot: Slot, task: Task): Promise<void> {
    slot.task = task;
    if (slot.idleTimer) clearTimeout(slot.idleTimer);
    slot.idleTimer = null;
    slot.worker.ref();
    if (slot.ready) this.armTimeout(slot); // else once it is: messages wait in its port meanwhile
    try {
      const post = (m: ToWorker, transfer: ArrayBuffer[] = []) => slot.worker.postMessage(m, transfer);
      if (task.bytes) {
        const { bytes } = task;
        post({ kind: 'begin', size: bytes.length });
        for (let off = 0; off < bytes.length; off += CHUNK_BYTES) {
          if (slot.task !== task) return; // the worker died meanwhile
          const piece = new Uint8Array(bytes.subarray(off, off + CHUNK_BYTES)); // its own ArrayBuffer: transferable
          post({ kind: 'chunk', bytes: piece }, [piece.buffer as ArrayBuffer]);
          if (off + CHUNK_BYTES < bytes.length) await yieldToLoop();
        }
      }
      if (slot.task !== task) return;
      task.bytes = null; // the worker has its copy; do not hold ours longer than the caller does
      post({ kind: 'run', op: task.op, args: task.args });
    } catch (e) {
      void this.retire(slot, e as Error);
    }
  }

  private armTimeout(slot: Slot): void {
    if (slot.taskTimer) clearTimeout(slot.taskTimer);
    slot.taskTimer = setTimeout(() => void this.retire(slot, new Error(`the task took longer than ${this.opts.taskTimeoutMs / 1000} s and was stopped`)), this.opts.taskTimeoutMs);
  }

  private finish(slot: Slot, m: Exclude<FromWorker, { kind: 'ready' }>): void {
    const task = slot.task;
    if (!task) return;
    this.release(slot);
    if (m.kind === 'done') task.resolve(m.result);
    else task.reject(new WorkerTaskError(m.name, m.message));
    this.dispatch();
  }

  /** The slot's task is over: the worker waits (unref'd) for the next one, and exits when idle too long. */
  private release(slot: Slot): void {
    slot.task = null;
    if (slot.taskTimer) clearTimeout(slot.taskTimer);
    slot.taskTimer = null;
    slot.worker.unref();
    slot.idleTimer = setTimeout(() => void this.retire(slot, null), this.opts.idleMs);
    slot.idleTimer.unref();
  }

  /** Removes a worker for good; its task (if any) rejects with `why`. */
  private async retire(slot: Slot, why: Error | null): Promise<void> {
    if (!this.slots.delete(slot)) return;
    if (slot.idleTimer) clearTimeout(slot.idleTimer);
    if (slot.taskTimer) clearTimeout(slot.taskTimer);
    const task = slot.task;
    slot.task = null;
    if (task) task.reject(why ?? new Error('the worker stopped'));
    await slot.worker.terminate().catch(() => undefined);
    if (!this.closed) this.dispatch();
  }
}

/**
 * checkPackage (package_check.ts) off the event loop: in a small pool of worker threads shared by
 * everything in the process (a master and its --local-slave included). An upload that unpacks to
 * 1 GiB costs a worker seconds and the daemon's event loop nothing, so heartbeats and every other
 * request go on while packages are checked.
 *
 * At most POOL_SIZE checks run at once (one core is left to the event loop), MAX_QUEUED more wait;
 * beyond that the upload is refused at once with PackageCheckBusy (HTTP 503), so a flood of uploads
 * cannot pile up in memory.
 */
import { availableParallelism } from 'node:os';
import { WorkerPool, PoolBusy, WorkerTaskError } from '../workers/worker_pool.ts';
import { ZipRejected } from './safe_zip.ts';
import { ManifestError } from './manifest.ts';
import type { PackageCheck, PackageCheckOptions } from './package_check.ts';
import type { PackageKind } from '../types.ts';

export type { PackageCheck, PackageCheckOptions } from './package_check.ts';

/** The kind a checked package is: a spiderplane.json makes it generic, anything else is taken as an egg. */
export function kindOfCheck(check: Pick<PackageCheck, 'manifest'>): PackageKind {
  return check.manifest ? 'generic' : 'scrapy-egg';
}

export const POOL_SIZE = Math.max(1, Math.min(4, availableParallelism() - 1));
export const MAX_QUEUED = 8;

/** Too many uploads are being checked right now; the client should retry later. */
export class PackageCheckBusy extends Error {
  override readonly name = 'PackageCheckBusy';
  readonly status = 503;
}

let pool: WorkerPool | null = null;

function sharedPool(): WorkerPool {
  pool ??= new WorkerPool({
    entry: new URL('./package_check_worker.ts', import.meta.url),
    size: POOL_SIZE, maxQueued: MAX_QUEUED, taskTimeoutMs: 10 * 60_000, idleMs: 30_000,
  });
  return pool;
}

/** Uploads being checked now, and waiting (for metrics and tests). */
export function packageCheckLoad(): { running: number; queued: number } {
  return pool ? pool.load() : { running: 0, queued: 0 };
}

/**
 * Checks (and for a generic package, optionally unpacks) an upload in a worker thread. Throws
 * ZipRejected or ManifestError as checkPackage does, PackageCheckBusy when the pool is full.
 */
export async function checkPackageOffThread(data: Buffer, opts: PackageCheckOptions): Promise<PackageCheck> {
  try {
    return await sharedPool().run<PackageCheck>('check', opts, data);
  } catch (e) {
    if (e instanceof PoolBusy) throw new PackageCheckBusy(`the server is busy checking other uploads (${e.message}); try again in a moment`);
    if (e instanceof WorkerTaskError && e.errorName === 'ZipRejected') throw new ZipRejected(e.message);
    if (e instanceof WorkerTaskError && e.errorName === 'ManifestError') throw new ManifestError(e.message);
    throw e;
  }
}

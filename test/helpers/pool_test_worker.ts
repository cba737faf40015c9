// A worker for test/worker_pool.test.ts: tasks that echo, hold until released, throw, or crash.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { serveTasks } from '../../common/workers/worker_tasks.ts';

serveTasks({
  digest: (_args, bytes) => ({ length: bytes?.length ?? null, sha256: bytes ? createHash('sha256').update(bytes).digest('hex') : null }),
  async hold(args) {
    const { file, tag } = args as { file: string; tag: string };
    while (!existsSync(file)) await sleep(20);
    return tag;
  },
  throw() {
    const e = new Error('it went wrong in the worker');
    e.name = 'Custom';
    throw e;
  },
  crash() {
    process.exit(7);
  },
});

// The entry point of every worker thread: loads the TypeScript module named in workerData.entry.
// The daemons run their .ts sources through tsx (`node --import tsx`), but Node 20 does not apply
// the parent's module hooks inside a worker thread ("Unknown file extension .ts"), and neither does
// the `tsx` CLI; registering tsx here, in the worker's own thread, does.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);

// The Scrapyd API's answers as types, and checks that turn a parsed JSON body into them. A client
// (the master's node client) validates what a node sends instead of casting it: a node that
// answers something else is reported with the field that is wrong, never trusted blindly.

/** The answer did not have the shape Scrapyd gives; the message names the field. */
export class ResponseShapeError extends Error {}

export interface DaemonStatusResponse { pending: number; running: number; finished: number; node_name: string }

export interface ListedPendingJob { id: string; project: string; spider: string; version?: string | null; settings?: Record<string, string>; args?: Record<string, string> }
export interface ListedRunningJob { id: string; project: string; spider: string; pid: number | null; start_time: string | null; log_url: string | null; items_url: string | null }
export interface ListedFinishedJob { id: string; project: string; spider: string; start_time: string | null; end_time: string | null; log_url: string | null; items_url: string | null }
export interface ListJobsResponse { pending: ListedPendingJob[]; running: ListedRunningJob[]; finished: ListedFinishedJob[] }

type Obj = Record<string, unknown>;

function obj(v: unknown, where: string): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ResponseShapeError(`${where} is not an object`);
  return v as Obj;
}
function str(o: Obj, k: string, where: string): string {
  if (typeof o[k] !== 'string') throw new ResponseShapeError(`${where}.${k} is not a string`);
  return o[k] as string;
}
function num(o: Obj, k: string, where: string): number {
  if (typeof o[k] !== 'number' || !Number.isFinite(o[k])) throw new ResponseShapeError(`${where}.${k} is not a number`);
  return o[k] as number;
}
/** Absent (older Scrapyd) reads as null. */
function strOrNull(o: Obj, k: string, where: string): string | null {
  if (o[k] === undefined || o[k] === null) return null;
  return str(o, k, where);
}
function list<T>(o: Obj, k: string, where: string, each: (v: unknown, w: string) => T): T[] {
  const v = o[k];
  if (!Array.isArray(v)) throw new ResponseShapeError(`${where}.${k} is not a list`);
  return v.map((x, i) => each(x, `${where}.${k}[${i}]`));
}
function stringMap(v: unknown, where: string): Record<string, string> {
  const o = obj(v, where);
  for (const [k, x] of Object.entries(o)) if (typeof x !== 'string') throw new ResponseShapeError(`${where}.${k} is not a string`);
  return o as Record<string, string>;
}

export function parseDaemonStatus(body: unknown): DaemonStatusResponse {
  const o = obj(body, 'daemonstatus.json');
  return { pending: num(o, 'pending', 'daemonstatus.json'), running: num(o, 'running', 'daemonstatus.json'), finished: num(o, 'finished', 'daemonstatus.json'), node_name: typeof o.node_name === 'string' ? o.node_name : '' };
}

export function parseListJobs(body: unknown): ListJobsResponse {
  const w = 'listjobs.json';
  const o = obj(body, w);
  const base = (v: unknown, where: string) => {
    const j = obj(v, where);
    return { j, id: str(j, 'id', where), project: str(j, 'project', where), spider: str(j, 'spider', where) };
  };
  return {
    pending: list(o, 'pending', w, (v, where) => {
      const { j, id, project, spider } = base(v, where);
      return {
        id, project, spider,
        ...(j.version !== undefined ? { version: strOrNull(j, 'version', where) } : {}),
        ...(j.settings !== undefined ? { settings: stringMap(j.settings, `${where}.settings`) } : {}),
        ...(j.args !== undefined ? { args: stringMap(j.args, `${where}.args`) } : {}),
      };
    }),
    running: list(o, 'running', w, (v, where) => {
      const { j, id, project, spider } = base(v, where);
      const pid = j.pid === undefined || j.pid === null ? null : num(j, 'pid', where);
      return { id, project, spider, pid, start_time: strOrNull(j, 'start_time', where), log_url: strOrNull(j, 'log_url', where), items_url: strOrNull(j, 'items_url', where) };
    }),
    finished: list(o, 'finished', w, (v, where) => {
      const { j, id, project, spider } = base(v, where);
      return { id, project, spider, start_time: strOrNull(j, 'start_time', where), end_time: strOrNull(j, 'end_time', where), log_url: strOrNull(j, 'log_url', where), items_url: strOrNull(j, 'items_url', where) };
    }),
  };
}

export function parseScheduled(body: unknown): string {
  return str(obj(body, 'schedule.json'), 'jobid', 'schedule.json');
}

export function parseCancelled(body: unknown): string | null {
  const o = obj(body, 'cancel.json');
  const prev = o.prevstate;
  if (prev === null || prev === undefined) return null;
  if (prev !== 'pending' && prev !== 'running' && prev !== 'finished') throw new ResponseShapeError('cancel.json.prevstate is not pending, running, finished or null');
  return prev;
}

export function parseAddVersion(body: unknown): number {
  return num(obj(body, 'addversion.json'), 'spiders', 'addversion.json');
}

/** listprojects / listversions / listspiders: one list of strings under `key`. */
export function parseNameList(body: unknown, endpoint: string, key: 'projects' | 'versions' | 'spiders'): string[] {
  return list(obj(body, endpoint), key, endpoint, (v, where) => {
    if (typeof v !== 'string') throw new ResponseShapeError(`${where} is not a string`);
    return v;
  });
}

import { dict } from '../dict.ts';
import { nameProblem } from '../names.ts';
import { ApiError, required } from './scrapyd_protocol.ts';

export { required };

// The Scrapyd API's request parameters, decoded once for every server that speaks it: the
// slave's API, the master's Scrapyd facade (and what the master's node client sends). Both
// servers refuse the same bad input with the same message, because both call these functions
// (test/scrapyd_protocol.test.ts runs one table of bad inputs against a slave and a master).

/** What a decoder reads from: request arguments merged from query string and body. */
export interface ParamSource {
  get(name: string): string | undefined;
  getAll(name: string): string[];
  names(): string[];
}

/** schedule.json's own parameters: never passed to the spider as `-a name=value`. */
export const SCHEDULE_RESERVED: ReadonlySet<string> = new Set(['project', 'spider', '_version', 'jobid', 'priority', 'setting', '_max_runtime', '_max_memory', '_nice', '_keep_running']);

/** Largest accepted limits: a year of runtime, 1 TiB of memory. */
export const MAX_RUNTIME_SECONDS = 365 * 24 * 3600;
export const MAX_MEMORY_MIB = 1024 * 1024;

/** A decoded schedule.json request. */
export interface ScheduleParams {
  project: string;
  spider: string;
  /** `_version`, or null for the newest version at launch. */
  version: string | null;
  jobid: string | null;
  priority: number;
  settings: Record<string, string>;
  args: Record<string, string>;
  /** `_max_runtime`: seconds the run may take (0 = none, overriding the slave's default); absent = the slave's default. */
  maxRuntime?: number;
  /** `_max_memory`: MiB of RSS the run's process tree may use (0 = none); absent = the slave's default. */
  maxMemory?: number;
  /** `_nice`: nice level 0..19 the spider starts with; absent = the slave's default. */
  nice?: number;
  /**
   * `_keep_running`: what the slave does with this run when its master lease expires (no master
   * heard for the master's offline window). 1 = keep it running; 0 = stop it (the master fails it
   * over elsewhere). Absent = keep it: nobody fails over a run the master did not send.
   */
  keepRunning?: boolean;
}

/** A limit parameter: a number in [0, max] (integer when asked), or undefined when not given. */
export function parseLimit(name: string, raw: string | undefined, max: number, integer = false): number | undefined {
  if (raw === undefined) return undefined;
  const n = raw.trim() === '' ? NaN : Number(raw.trim());
  if (!Number.isFinite(n) || n < 0 || n > max || (integer && !Number.isInteger(n))) {
    throw new ApiError(`${name} is invalid: expected ${integer ? 'an integer' : 'a number'} from 0 to ${max}, got '${raw.slice(0, 50)}'`);
  }
  return n;
}

/** A name that becomes a path (project, version, spider, job): the error names the rule broken. */
export function checkName(kind: string, value: string): string {
  const problem = nameProblem(value);
  if (problem) throw new ApiError(`${kind} '${value.slice(0, 200)}' is invalid: it ${problem}`);
  return value;
}

/** Scrapyd's float(priority), with its message for what Python cannot convert. */
export function parsePriority(raw: string | undefined): number {
  if (raw === undefined) return 0;
  const n = raw.trim() === '' ? NaN : Number(raw.trim());
  if (!Number.isFinite(n)) throw new ApiError(`priority is invalid: could not convert string to float: b'${raw}'`);
  return n;
}

/**
 * Checks one `setting=NAME=VALUE`: returns why it is refused, or null. Registered checks run on
 * both servers (the hook for per-setting validation, e.g. settings that name paths).
 */
export type SettingCheck = (name: string, value: string) => string | null;
const settingChecks: SettingCheck[] = [];

/** Adds a check every schedule.json `setting=` value passes through, on slave and master alike. */
export function addSettingCheck(check: SettingCheck): void {
  if (!settingChecks.includes(check)) settingChecks.push(check);
}

export function parseSettings(list: string[]): Record<string, string> {
  const out = dict<string>(); // no prototype: a setting or argument named __proto__ is just a name
  for (const s of list) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new ApiError(`setting '${s.slice(0, 200)}' is invalid: expected NAME=VALUE`);
    const name = s.slice(0, eq);
    const value = s.slice(eq + 1);
    if (name.includes('\0') || /\s/.test(name)) throw new ApiError(`setting '${name.slice(0, 200)}' is invalid: its name must not contain NUL or whitespace`);
    for (const check of settingChecks) {
      const problem = check(name, value);
      if (problem !== null) throw new ApiError(`setting '${name.slice(0, 200)}' is invalid: ${problem}`);
    }
    out[name] = value;
  }
  return out;
}

/** Every parameter that is not one of schedule's own becomes a spider argument (-a name=value). */
export function spiderArgs(params: ParamSource): Record<string, string> {
  const out = dict<string>();
  for (const name of params.names()) {
    if (SCHEDULE_RESERVED.has(name)) continue;
    // `-a a=b=c` would set a different argument; NUL cannot pass through exec.
    if (name === '' || name.includes('=') || name.includes('\0')) throw new ApiError(`spider argument name '${name.slice(0, 200)}' is invalid`);
    const value = params.get(name)!;
    if (value.includes('\0')) throw new ApiError(`spider argument '${name.slice(0, 200)}' is invalid: its value must not contain NUL`);
    out[name] = value;
  }
  return out;
}

/** Decodes schedule.json, checks in a fixed order so every server gives the same first error. */
export function decodeSchedule(p: ParamSource): ScheduleParams {
  const project = required(p.get('project'), 'project');
  const spider = required(p.get('spider'), 'spider');
  checkName('project', project);
  checkName('spider', spider);
  const jobid = p.get('jobid');
  if (jobid !== undefined) checkName('jobid', jobid);
  // _version needs no check: it is stored sanitised (common/names.ts), so it cannot form a path.
  const version = p.get('_version');
  return {
    project,
    spider,
    version: version ?? null,
    jobid: jobid ?? null,
    priority: parsePriority(p.get('priority')),
    settings: parseSettings(p.getAll('setting')),
    args: spiderArgs(p),
    ...limitParams(p),
    ...keepRunningParam(p),
  };
}

/** `_keep_running`: 0 or 1 (absent stays absent). */
function keepRunningParam(p: ParamSource): Pick<ScheduleParams, 'keepRunning'> {
  const raw = p.get('_keep_running');
  if (raw === undefined) return {};
  const v = raw.trim();
  if (v !== '0' && v !== '1') throw new ApiError(`_keep_running is invalid: expected 0 or 1, got '${raw.slice(0, 50)}'`);
  return { keepRunning: v === '1' };
}

/** The reserved limit parameters that were given (absent ones stay absent: the slave's defaults apply). */
function limitParams(p: ParamSource): Pick<ScheduleParams, 'maxRuntime' | 'maxMemory' | 'nice'> {
  const out: Pick<ScheduleParams, 'maxRuntime' | 'maxMemory' | 'nice'> = {};
  const maxRuntime = parseLimit('_max_runtime', p.get('_max_runtime'), MAX_RUNTIME_SECONDS);
  const maxMemory = parseLimit('_max_memory', p.get('_max_memory'), MAX_MEMORY_MIB);
  const nice = parseLimit('_nice', p.get('_nice'), 19, true);
  if (maxRuntime !== undefined) out.maxRuntime = maxRuntime;
  if (maxMemory !== undefined) out.maxMemory = maxMemory;
  if (nice !== undefined) out.nice = nice;
  return out;
}

/** The pairs a client posts to schedule.json for a request (the inverse of decodeSchedule). */
export function encodeSchedule(r: ScheduleParams): Array<[string, string]> {
  const pairs: Array<[string, string]> = [['project', r.project], ['spider', r.spider], ['priority', String(r.priority)]];
  if (r.jobid !== null) pairs.push(['jobid', r.jobid]);
  if (r.version !== null) pairs.push(['_version', r.version]);
  if (r.maxRuntime !== undefined) pairs.push(['_max_runtime', String(r.maxRuntime)]);
  if (r.maxMemory !== undefined) pairs.push(['_max_memory', String(r.maxMemory)]);
  if (r.nice !== undefined) pairs.push(['_nice', String(r.nice)]);
  if (r.keepRunning !== undefined) pairs.push(['_keep_running', r.keepRunning ? '1' : '0']);
  for (const [k, v] of Object.entries(r.settings)) pairs.push(['setting', `${k}=${v}`]);
  for (const [k, v] of Object.entries(r.args)) {
    if (SCHEDULE_RESERVED.has(k)) throw new ApiError(`spider argument name '${k}' is reserved by schedule.json`);
    pairs.push([k, v]);
  }
  return pairs;
}

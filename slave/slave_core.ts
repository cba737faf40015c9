import type { ScheduleParams } from '../common/http/scrapyd_params.ts';
import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { JobState } from '../common/types.ts';
import { sanitizeVersion } from '../common/names.ts';
import { checkName } from '../common/http/scrapyd_params.ts';
import { ApiError } from '../common/http/scrapyd_protocol.ts';
import { checkSettingPaths, SettingPathError } from '../common/scrapy_setting_paths.ts';
import { jobItemsPath, jobLogPath } from './http/html_views.ts';
import type { JobRow, JobStore } from './jobs/job_store.ts';
import type { JobFiles } from './jobs/job_files.ts';
import { PackageError, type PackageStore } from './packages/package_store.ts';
import type { Launcher } from './runner/launcher.ts';

/** What schedule.json asks for: the protocol module's decoded parameters. */
export type ScheduleRequest = ScheduleParams;

const SIGNALS: Record<string, NodeJS.Signals> = { INT: 'SIGINT', TERM: 'SIGTERM', KILL: 'SIGKILL', HUP: 'SIGHUP', QUIT: 'SIGQUIT', USR1: 'SIGUSR1', USR2: 'SIGUSR2' };
const SIGNAL_NUMBERS: Record<string, string> = { '1': 'HUP', '2': 'INT', '3': 'QUIT', '9': 'KILL', '10': 'USR1', '12': 'USR2', '15': 'TERM' };

export { checkName };

export function parseSignal(raw: string | undefined): NodeJS.Signals {
  if (raw === undefined) return 'SIGINT';
  const name = raw.toUpperCase().replace(/^SIG/, '');
  const sig = SIGNALS[SIGNAL_NUMBERS[name] ?? name];
  if (!sig) throw new ApiError(`signal '${raw}' is invalid: use one of ${Object.keys(SIGNALS).join(', ')} (or its number)`);
  return sig;
}

/** What the Scrapyd endpoints do, free of HTTP: the daemon's operations. */
export class SlaveCore {
  constructor(
    readonly jobs: JobStore,
    readonly packages: PackageStore,
    readonly files: JobFiles,
    readonly launcher: Launcher,
  ) {}

  requireProject(project: string): void {
    checkName('project', project);
    if (!this.packages.hasProject(project)) throw new ApiError(`project '${project}' not found`);
  }

  async addVersion(project: string, version: string, egg: Buffer): Promise<number> {
    checkName('project', project);
    const stored = checkName('version', sanitizeVersion(version));
    try {
      const added = await this.packages.add(project, stored, egg);
      this.launcher.warmFor(added);
      return added.spiders.length;
    } catch (e) {
      if (e instanceof PackageError) throw new ApiError(e.message);
      throw e;
    }
  }

  schedule(r: ScheduleRequest): string {
    this.requireProject(r.project);
    checkName('spider', r.spider);
    const version = r.version === null ? null : sanitizeVersion(r.version);
    const pkg = this.packages.resolve(r.project, version);
    if (!pkg) throw new ApiError(`version '${r.version}' not found`);
    if (!pkg.spiders.includes(r.spider)) throw new ApiError(`spider '${r.spider}' not found`);
    try {
      checkSettingPaths(r.settings, this.packages.workDir(r.project));
    } catch (e) {
      if (e instanceof SettingPathError) throw new ApiError(e.message);
      throw e;
    }
    const id = r.jobid === null ? randomUUID().replace(/-/g, '') : checkName('jobid', r.jobid);
    const uid = this.jobs.enqueue({ id, project: r.project, spider: r.spider, version: r.version, priority: r.priority, args: r.args, settings: r.settings });
    if (r.maxRuntime !== undefined || r.maxMemory !== undefined || r.nice !== undefined) {
      this.launcher.setRequestedLimits(uid, { maxRuntime: r.maxRuntime ?? null, maxMemory: r.maxMemory ?? null, nice: r.nice ?? null });
    }
    if (r.keepRunning !== undefined) this.launcher.setKeepRunning(uid, r.keepRunning);
    this.launcher.kick();
    return id;
  }

  cancel(project: string, job: string, signal: NodeJS.Signals): JobState | null {
    this.requireProject(project);
    let prev: JobState | null = this.jobs.removePending(project, job) > 0 ? 'pending' : null;
    for (const row of this.jobs.runningById(project, job)) {
      if (this.launcher.cancelRunning(row, signal)) prev = 'running';
    }
    return prev;
  }

  /** Scrapyd looks at finished first: a reused job id whose older run finished reads 'finished'. */
  status(job: string, project: string | undefined): JobState | null {
    if (project !== undefined) this.requireProject(project);
    const states = new Set(this.jobs.states(job, project));
    for (const s of ['finished', 'running', 'pending'] as const) if (states.has(s)) return s;
    return null;
  }

  listSpiders(project: string, version: string | undefined): string[] {
    this.requireProject(project);
    const pkg = this.packages.resolve(project, version === undefined ? null : sanitizeVersion(version));
    if (!pkg) throw new ApiError(`version '${version}' not found`);
    return pkg.spiders;
  }

  async deleteVersion(project: string, version: string): Promise<void> {
    checkName('project', project);
    if (!(await this.packages.deleteVersion(project, sanitizeVersion(version)))) throw new ApiError(`version '${version}' not found`);
  }

  async deleteProject(project: string): Promise<void> {
    checkName('project', project);
    if (!(await this.packages.deleteProject(project))) throw new ApiError(`project '${project}' not found`);
  }

  /** log_url/items_url of a running job: null until its file exists, as Scrapyd reports. */
  async runningUrls(row: JobRow): Promise<{ log_url: string | null; items_url: string | null }> {
    const p = this.files.paths(row.project, row.spider, row.id);
    const exists = (f: string) => stat(f).then(() => true, () => false);
    const [log, items] = await Promise.all([exists(p.logPath), exists(p.itemsPath)]);
    return { log_url: log ? logUrl(row) : null, items_url: items ? itemsUrl(row) : null };
  }
}

export function logUrl(r: { project: string; spider: string; id: string }): string { return jobLogPath(r.project, r.spider, r.id); }
export function itemsUrl(r: { project: string; spider: string; id: string }): string { return jobItemsPath(r.project, r.spider, r.id); }

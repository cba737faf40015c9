import { join } from 'node:path';
import type { StoredVersion } from '../packages/package_store.ts';
import { eggEnvironment } from './python.ts';
import { activateEnvironments, pythonFor } from './env_activation.ts';

export interface SpawnSpec {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
}

export interface JobLaunch {
  uid: number;
  id: string;
  project: string;
  spider: string;
  requestedVersion: string | null;
  args: Record<string, string>;
  settings: Record<string, string>;
  itemsPath: string;
  logPath: string;
  /** The project's work folder: writable by the spider, the cwd of Scrapy jobs. */
  workDir: string;
}

/**
 * The job variables every spider gets, Scrapy or not: Scrapyd's and spiderplane's. They are set
 * last, over the allow-listed base environment (spider_env.ts) and the package's own variables.
 */
function commonEnv(job: JobLaunch, pkg: StoredVersion): Record<string, string> {
  return {
    SCRAPY_PROJECT: job.project,
    SCRAPY_SPIDER: job.spider,
    SCRAPY_JOB: job.id,
    SCRAPYD_EGG_VERSION: pkg.version,
    SPIDERPLANE_PROJECT: job.project,
    SPIDERPLANE_SPIDER: job.spider,
    SPIDERPLANE_JOB: job.id,
    SPIDERPLANE_JOB_UID: String(job.uid),
    SPIDERPLANE_VERSION: pkg.version,
    SPIDERPLANE_ITEMS_FILE: job.itemsPath,
    SPIDERPLANE_LOG_FILE: job.logPath,
    SPIDERPLANE_WORK_DIR: job.workDir,
    SPIDERPLANE_ARGS: JSON.stringify(job.args),
    SPIDERPLANE_SETTINGS: JSON.stringify(job.settings),
  };
}

/**
 * `scrapy crawl` as Scrapyd's launcher builds it: user args as -a (plus _job, and _version when it
 * was given), settings as -s, and the items feed as FEEDS. The log is the process's stderr, which
 * the runner writes to the job's log file itself, so even a crash before Scrapy configures its
 * logging is kept.
 */
export function scrapyCommand(job: JobLaunch, pkg: StoredVersion, python: string, baseEnv: Record<string, string>): SpawnSpec {
  const args = ['-m', 'scrapy', 'crawl', job.spider];
  const spiderArgs: Record<string, string> = { ...job.args, _job: job.id };
  if (job.requestedVersion !== null) spiderArgs._version = job.requestedVersion;
  for (const [k, v] of Object.entries(spiderArgs)) args.push('-a', `${k}=${v}`);
  const settings = { ...job.settings, FEEDS: JSON.stringify({ [`file://${job.itemsPath}`]: { format: 'jsonlines' } }) };
  for (const [k, v] of Object.entries(settings)) args.push('-s', `${k}=${v}`);
  return {
    command: pythonFor(pkg.envs, python),
    args,
    env: { ...eggEnvironment(activateEnvironments(baseEnv, pkg.envs), pkg.path, pkg.settingsModule ?? ''), ...commonEnv(job, pkg) },
    cwd: job.workDir,
  };
}

/**
 * A generic package's spider: its manifest command, with args appended as --name=value. It runs in
 * its package folder (readable, not writable); SPIDERPLANE_WORK_DIR is where it may keep files.
 */
export function genericCommand(job: JobLaunch, pkg: StoredVersion, baseEnv: Record<string, string>): SpawnSpec {
  const spec = pkg.manifest?.spiders[job.spider];
  if (!spec) throw new Error(`spider '${job.spider}' not found in ${pkg.project} ${pkg.version}`);
  const argv = Object.entries(job.args).map(([k, v]) => `--${k}=${v}`);
  const env = { ...activateEnvironments(baseEnv, pkg.envs), ...spec.env, ...commonEnv(job, pkg) };
  if (typeof spec.command === 'string') {
    return { command: '/bin/sh', args: ['-c', spec.command, job.spider, ...argv], env, cwd: pkg.path };
  }
  const [command, ...rest] = spec.command;
  // A relative executable ('./run.sh', 'bin/x') means a file of the package.
  const resolved = command!.includes('/') && !command!.startsWith('/') ? join(pkg.path, command!) : command!;
  return { command: resolved, args: [...rest, ...argv], env, cwd: pkg.path };
}

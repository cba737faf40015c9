/**
 * One interface for what differs between package kinds (issue 10): what a kind inspects in an
 * upload and how it puts it in place (building its dependency environment and listing its
 * spiders on the way), where a stored version lives, and how a job's command line is made.
 * PackageStore and the launcher go through it instead of branching on 'scrapy-egg' | 'generic'.
 */
import type { PackageKind } from '../../../common/types.ts';
import type { PackageCheck } from '../../../common/packages/package_checker.ts';
import type { Declared } from '../../../common/packages/requirements.ts';
import type { SpiderSandbox } from '../../runner/sandbox.ts';
import type { JobLaunch, SpawnSpec } from '../../runner/spider_command.ts';
import type { EnvironmentStore } from '../environments.ts';
import type { StoredVersion } from '../package_store.ts';

/** What a kind needs from the store to install a version. */
export interface KindContext {
  dataDir: string;
  sandbox: SpiderSandbox;
  envs: EnvironmentStore;
  python: () => Promise<string | null>;
  workDir: (project: string) => string;
  /** Builds (or reuses) the Python environment of the declared requirements; null when none. Claims its key. */
  pythonEnv: (declared: Declared, project: string, version: string) => Promise<{ key: string; path: string } | null>;
}

/** An upload being installed: its checked bytes and what it declares. */
export interface Upload {
  project: string;
  version: string;
  data: Buffer;
  check: PackageCheck;
  declared: Declared;
  /** A generic package's unpacked files (null for an egg). */
  staging: string | null;
  /** Environment keys this upload claimed (released by the store once the row is written). */
  claimed: string[];
}

/** The kind-specific columns of a stored version. */
export interface Installed {
  spiders: string[];
  settings_module: string | null;
  manifest: string | null;
  py_env: string | null;
  node_env: string | null;
}

/** A job's command needs the slave's interpreter for some kinds: null when there is none. */
export interface CommandContext {
  python: string | null;
  baseEnv: Record<string, string>;
}

export class KindError extends Error {}

export interface PackageKindHandler {
  readonly name: PackageKind;
  /** Where a stored version's files are (the .egg file, the unpacked folder). */
  path(dataDir: string, project: string, version: string): string;
  /** Builds its environment, lists its spiders and moves it into place; throws PackageError on a refusal. */
  install(upload: Upload, ctx: KindContext): Promise<Installed>;
  /** The command line of one job; throws KindError when this slave cannot run it. */
  command(job: JobLaunch, pkg: StoredVersion, ctx: CommandContext): SpawnSpec;
}

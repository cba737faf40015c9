/**
 * What a venv's `activate` does, for a spider whose version has a dependency environment: the
 * environment's bin first on PATH (so `python3`, `python` and console scripts are the package's
 * own), VIRTUAL_ENV set and PYTHONHOME unset; a Node environment's node_modules/.bin on PATH too.
 * Pure: the base environment is passed in and not changed.
 */
import { join } from 'node:path';

export interface EnvPaths {
  /** The Python environment's folder (a virtualenv), or null. */
  pyEnv: string | null;
  /** The Node environment's folder (holding node_modules), or null. */
  nodeEnv: string | null;
}

export function activateEnvironments(base: Record<string, string>, envs: EnvPaths): Record<string, string> {
  if (!envs.pyEnv && !envs.nodeEnv) return base;
  const out = { ...base };
  const first: string[] = [];
  if (envs.pyEnv) first.push(join(envs.pyEnv, 'bin'));
  if (envs.nodeEnv) first.push(join(envs.nodeEnv, 'node_modules', '.bin'));
  out.PATH = [...first, base.PATH].filter(Boolean).join(':');
  if (envs.pyEnv) {
    out.VIRTUAL_ENV = envs.pyEnv;
    delete out.PYTHONHOME;
  }
  return out;
}

/** The interpreter a Scrapy spider of this version runs with: its venv's python, else the slave's. */
export function pythonFor(envs: EnvPaths, slavePython: string): string {
  return envs.pyEnv ? join(envs.pyEnv, 'bin', 'python') : slavePython;
}

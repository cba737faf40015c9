import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { SpiderSandbox } from './sandbox.ts';
import { activateEnvironments, pythonFor, type EnvPaths } from './env_activation.ts';

const run = promisify(execFile);

/**
 * Whether an interpreter has Scrapy, found without importing it: importing Scrapy (Twisted and all)
 * costs ~0.3 s of CPU on every daemon start. An installation that is there but broken fails the
 * first `scrapy list` of an upload with Scrapy's own error instead.
 */
const HAS_SCRAPY = "import importlib.util, sys; sys.exit(importlib.util.find_spec('scrapy') is None)";

/** The first interpreter (configured one only, else /usr/bin/python3 then python3) that has scrapy. */
export async function findScrapyPython(configured: string | null): Promise<string | null> {
  const candidates = configured ? [configured] : ['/usr/bin/python3', 'python3'];
  for (const python of candidates) {
    try {
      await run(python, ['-c', HAS_SCRAPY], { timeout: 30_000 });
      return python;
    } catch {
      // not this one
    }
  }
  return null;
}

export class RunnerError extends Error {}

/** The environment that makes an egg importable and selects its Scrapy settings module. */
export function eggEnvironment(base: Record<string, string>, eggPath: string, settingsModule: string): Record<string, string> {
  return {
    ...base,
    PYTHONPATH: base.PYTHONPATH ? `${eggPath}:${base.PYTHONPATH}` : eggPath,
    SCRAPY_SETTINGS_MODULE: settingsModule,
    PYTHONUNBUFFERED: '1',
  };
}

/**
 * Runs `scrapy list` against an egg, as Scrapyd does on addversion and listspiders. It imports the
 * package's code, so it runs like a spider: as the sandbox's user, with its environment (and
 * inside the version's dependency environment when it has one).
 */
export async function listEggSpiders(python: string, eggPath: string, settingsModule: string, project: string, cwd: string, sandbox: SpiderSandbox, envs: EnvPaths = { pyEnv: null, nodeEnv: null }): Promise<string[]> {
  try {
    // Inside the version's environment, when it has one: its imports must resolve as the spider's will.
    const { stdout } = await run(pythonFor(envs, python), ['-m', 'scrapy', 'list'], {
      env: { ...eggEnvironment(activateEnvironments(sandbox.baseEnv(cwd), envs), eggPath, settingsModule), SCRAPY_PROJECT: project },
      ...sandbox.spawnIdentity(),
      cwd,
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout.split('\n').map((s) => s.trim()).filter(Boolean);
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new RunnerError(`RunnerError: ${err.stderr?.trim() || err.message}`);
  }
}

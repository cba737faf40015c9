/**
 * Scrapy eggs (what scrapyd-deploy uploads): kept as the .egg file, spiders listed by
 * `scrapy list` inside the version's environment, run as `python -m scrapy crawl`.
 */
import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MANIFEST_NAME } from '../../../common/packages/manifest.ts';
import { listEggSpiders } from '../../runner/python.ts';
import { scrapyCommand } from '../../runner/spider_command.ts';
import { PackageError } from '../package_store.ts';
import { KindError, type PackageKindHandler } from './kind.ts';

export const eggKind: PackageKindHandler = {
  name: 'scrapy-egg',

  path: (dataDir, project, version) => join(dataDir, 'eggs', project, `${version}.egg`),

  async install(u, ctx) {
    const settingsModule = u.check.settingsModule;
    if (!settingsModule) {
      throw new PackageError(`egg has no Scrapy entry point: EGG-INFO/entry_points.txt needs "[scrapy]" with "settings = yourproject.settings" (what scrapyd-deploy's setup.py declares), and there is no ${MANIFEST_NAME} for a generic package`);
    }
    const python = await ctx.python();
    if (!python) throw new PackageError('no Python interpreter that can import scrapy was found on this slave (install Scrapy or set --python)');
    const egg = eggKind.path(ctx.dataDir, u.project, u.version);
    await mkdir(join(egg, '..'), { recursive: true });
    await chmod(join(egg, '..'), 0o755); // spiders (the run-as user) read eggs whatever the daemon's umask
    const staging = `${egg}.incoming-${process.pid}-${Date.now()}`;
    await writeFile(staging, u.data);
    await chmod(staging, 0o644);
    let spiders: string[];
    let py: { key: string; path: string } | null = null;
    try {
      py = await ctx.pythonEnv(u.declared, u.project, u.version);
      if (py) u.claimed.push(py.key);
      await mkdir(ctx.workDir(u.project), { recursive: true });
      ctx.sandbox.ownFolder(ctx.workDir(u.project));
      spiders = await listEggSpiders(python, staging, settingsModule, u.project, ctx.workDir(u.project), ctx.sandbox, { pyEnv: py?.path ?? null, nodeEnv: null });
    } catch (e) {
      await rm(staging, { force: true });
      throw e instanceof PackageError ? e : new PackageError((e as Error).message);
    }
    await rename(staging, egg);
    return { spiders, settings_module: settingsModule, manifest: null, py_env: py?.key ?? null, node_env: null };
  },

  command(job, pkg, ctx) {
    if (!ctx.python) throw new KindError('no Python interpreter that can import scrapy on this slave');
    return scrapyCommand(job, pkg, ctx.python, ctx.baseEnv);
  },
};

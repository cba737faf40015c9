/**
 * Generic packages (spiderplane.json): unpacked into a folder, spiders from the manifest, its
 * Python requirements in a venv and its Node lockfile in node_modules linked next to it, run as
 * the manifest's command.
 */
import { existsSync } from 'node:fs';
import { chmod, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { genericCommand } from '../../runner/spider_command.ts';
import { EnvironmentBuildError } from '../environments.ts';
import { ensureNodeBoundary, PackageError } from '../package_store.ts';
import type { PackageKindHandler } from './kind.ts';

export const genericKind: PackageKindHandler = {
  name: 'generic',

  path: (dataDir, project, version) => join(dataDir, 'packages', project, version),

  async install(u, ctx) {
    const manifest = u.check.manifest!;
    const staging = u.staging!;
    const dir = genericKind.path(ctx.dataDir, u.project, u.version);
    let py: { key: string; path: string } | null = null;
    let node: { key: string; path: string } | null = null;
    try {
      py = await ctx.pythonEnv(u.declared, u.project, u.version);
      if (py) u.claimed.push(py.key);
      // A package that ships its own node_modules keeps it, as an uberegg keeps its bundled code.
      if (u.declared.node && !existsSync(join(staging, 'node_modules'))) {
        const key = ctx.envs.nodeKey(u.declared.node);
        try {
          node = { key, path: await ctx.envs.ensureNode(key, u.declared.node, staging, { project: u.project, version: u.version }) };
        } catch (e) {
          if (e instanceof EnvironmentBuildError) throw new PackageError(e.message);
          throw e;
        }
        u.claimed.push(key);
        await symlink(join(node.path, 'node_modules'), join(staging, 'node_modules'));
      }
    } catch (e) {
      await rm(staging, { recursive: true, force: true });
      throw e;
    }
    await chmod(join(dir, '..'), 0o755); // spiders (the run-as user) read packages whatever the daemon's umask
    ensureNodeBoundary(staging);
    // Swap in the new tree; an old tree of the same version goes aside first so the rename succeeds.
    const old = `${dir}.replaced-${process.pid}-${Date.now()}`;
    await rename(dir, old).catch(() => undefined);
    await rename(staging, dir);
    await rm(old, { recursive: true, force: true });
    return { spiders: Object.keys(manifest.spiders), settings_module: null, manifest: JSON.stringify(manifest), py_env: py?.key ?? null, node_env: node?.key ?? null };
  },

  command(job, pkg, ctx) {
    // Versions unpacked before packages got their boundary get it now (a tiny sync write, once).
    try { ensureNodeBoundary(pkg.path); } catch (e) { console.error(`[spiderplane-slave] no Node boundary for ${pkg.project} ${pkg.version}: ${(e as Error).message}`); }
    return genericCommand(job, pkg, ctx.baseEnv);
  },
};

import { existsSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Db } from '../../common/sqlite.ts';
import type { PackageKind } from '../../common/types.ts';
import { sortVersions, newestVersion } from '../../common/versions.ts';
import { nowSeconds } from '../../common/scrapyd_time.ts';
import { isZip, ZipRejected, type ZipLimits } from '../../common/packages/safe_zip.ts';
import { manifestFromJson, ManifestError, type Manifest } from '../../common/packages/manifest.ts';
import { checkPackageOffThread, kindOfCheck, PackageCheckBusy, type PackageCheck } from '../../common/packages/package_checker.ts';
import type { SpiderSandbox } from '../runner/sandbox.ts';
import type { EnvPaths } from '../runner/env_activation.ts';
import { declaredFrom, RequirementsError, type Declared } from '../../common/packages/requirements.ts';
import { EnvironmentBuildError, type EnvironmentStore, type ForVersion } from './environments.ts';
import { kindOf } from './kinds/index.ts';
import type { KindContext } from './kinds/kind.ts';

export class PackageError extends Error {}

/** What an unpacked package without a package.json of its own gets at its root. */
export const NODE_BOUNDARY = '{ "type": "commonjs" }\n';

/**
 * Gives an unpacked generic package a Node module boundary: Node takes a .js file's module kind
 * from the nearest package.json above it, which — with the data folder inside a Node project, as in
 * the quick start — would be the daemon's own ("type": "module"), and require() would break. A
 * package that ships its own package.json keeps it. Returns whether one was written.
 */
export function ensureNodeBoundary(dir: string): boolean {
  const file = join(dir, 'package.json');
  if (existsSync(file)) return false;
  writeFileSync(file, NODE_BOUNDARY);
  return true;
}

export interface VersionRow {
  project: string;
  version: string;
  kind: PackageKind;
  uploaded_at: number;
  size: number;
  sha256: string;
  spiders: string;
  settings_module: string | null;
  manifest: string | null;
  requirements: string | null;
  py_env: string | null;
  node_env: string | null;
}

export interface StoredVersion {
  project: string;
  version: string;
  kind: PackageKind;
  spiders: string[];
  settingsModule: string | null;
  manifest: Manifest | null;
  /** The .egg file (eggs) or the extracted folder (generic packages). */
  path: string;
  /** The pip requirements it declared (empty: none). */
  requirements: string[];
  /** Its dependency environments (null: none declared). */
  envs: EnvPaths;
  envKeys: { py: string | null; node: string | null };
}

/**
 * Every uploaded version, on disk and in SQLite. Files are written under a temporary name and
 * renamed into place, so a crash never leaves a half-written version that looks complete.
 */
export class PackageStore {
  private readonly s;

  constructor(
    private readonly db: Db,
    private readonly dataDir: string,
    private readonly zipLimits: ZipLimits,
    private readonly python: () => Promise<string | null>,
    private readonly sandbox: SpiderSandbox,
    readonly envs: EnvironmentStore,
  ) {
    this.s = {
      projects: db.prepare(`SELECT project FROM versions GROUP BY project ORDER BY MIN(uploaded_at), project`),
      versions: db.prepare(`SELECT version FROM versions WHERE project = ?`),
      get: db.prepare(`SELECT * FROM versions WHERE project = ? AND version = ?`),
      upsert: db.prepare(`INSERT INTO versions (project, version, kind, uploaded_at, size, sha256, spiders, settings_module, manifest, requirements, py_env, node_env)
                          VALUES (@project, @version, @kind, @uploaded_at, @size, @sha256, @spiders, @settings_module, @manifest, @requirements, @py_env, @node_env)
                          ON CONFLICT (project, version) DO UPDATE SET kind = excluded.kind, uploaded_at = excluded.uploaded_at,
                          size = excluded.size, sha256 = excluded.sha256, spiders = excluded.spiders,
                          settings_module = excluded.settings_module, manifest = excluded.manifest,
                          requirements = excluded.requirements, py_env = excluded.py_env, node_env = excluded.node_env`),
      envKeys: db.prepare(`SELECT py_env, node_env FROM versions WHERE project = ? AND (? IS NULL OR version = ?)`),
      delete: db.prepare(`DELETE FROM versions WHERE project = ? AND version = ?`),
      deleteProject: db.prepare(`DELETE FROM versions WHERE project = ?`),
      all: db.prepare(`SELECT project, version, kind, uploaded_at, size, sha256, spiders FROM versions ORDER BY project, uploaded_at`),
    };
  }

  eggPath(project: string, version: string): string { return kindOf('scrapy-egg').path(this.dataDir, project, version); }
  genericDir(project: string, version: string): string { return kindOf('generic').path(this.dataDir, project, version); }
  workDir(project: string): string { return join(this.dataDir, 'work', project); }

  projects(): string[] { return (this.s.projects.all() as Array<{ project: string }>).map((r) => r.project); }
  hasProject(project: string): boolean { return this.versions(project).length > 0; }

  versions(project: string): string[] {
    return sortVersions((this.s.versions.all(project) as Array<{ version: string }>).map((r) => r.version));
  }

  /** The given version, or the newest when version is null; undefined when there is none. */
  resolve(project: string, version: string | null): StoredVersion | undefined {
    const v = version ?? newestVersion(this.versions(project));
    if (v === null) return undefined;
    const row = this.s.get.get(project, v) as VersionRow | undefined;
    return row ? this.toStored(row) : undefined;
  }

  all(): Array<Omit<VersionRow, 'settings_module' | 'manifest'>> { return this.s.all.all() as VersionRow[]; }

  private toStored(row: VersionRow): StoredVersion {
    return {
      project: row.project,
      version: row.version,
      kind: row.kind,
      spiders: JSON.parse(row.spiders) as string[],
      settingsModule: row.settings_module,
      manifest: row.manifest ? manifestFromJson(row.manifest) : null,
      path: kindOf(row.kind).path(this.dataDir, row.project, row.version),
      requirements: row.requirements ? JSON.parse(row.requirements) as string[] : [],
      envs: { pyEnv: row.py_env ? this.envs.pathOf(row.py_env) : null, nodeEnv: row.node_env ? this.envs.pathOf(row.node_env) : null },
      envKeys: { py: row.py_env, node: row.node_env },
    };
  }

  /** Records that a version's environments were used by a run (envs.json's last_used). */
  noteUsed(pkg: StoredVersion): void {
    this.envs.touch(pkg.envKeys.py);
    this.envs.touch(pkg.envKeys.node);
  }

  private declared(check: PackageCheck): Declared {
    try {
      return declaredFrom(check.declared, check.manifest ? null : { topLevel: new Set(check.topLevel) });
    } catch (e) {
      if (e instanceof RequirementsError) throw new PackageError(e.message);
      throw e;
    }
  }

  /** Builds (or reuses) the Python environment a version declares; null when it declares none. Claims its key. */
  private async pythonEnv(declared: Declared, forVersion: ForVersion): Promise<{ key: string; path: string } | null> {
    if (declared.python.length === 0) return null;
    const python = await this.python();
    if (!python) throw new PackageError('the package declares Python requirements, but no Python interpreter that can import scrapy was found on this slave (install Scrapy or set --python)');
    const key = await this.envs.pythonKey(python, declared.python);
    try {
      return { key, path: await this.envs.ensurePython(key, python, declared.python, forVersion) };
    } catch (e) {
      if (e instanceof EnvironmentBuildError) throw new PackageError(e.message);
      throw e;
    }
  }

  private oldEnvKeys(project: string, version: string | null): Array<string | null> {
    return (this.s.envKeys.all(project, version, version) as Array<{ py_env: string | null; node_env: string | null }>).flatMap((r) => [r.py_env, r.node_env]);
  }

  /**
   * Validates and stores a package. Unlike Scrapyd, a package whose spiders cannot be listed is
   * refused and not kept, so a broken upload never becomes the version that runs next.
   */
  async add(project: string, version: string, data: Buffer): Promise<StoredVersion> {
    if (!isZip(data)) throw new PackageError('egg is not a ZIP file (if using curl, use egg=@path not egg=path)');
    // Every entry's real bytes are checked (and a generic package unpacked into staging) in a
    // worker thread: a package may unpack to --max-unzipped-mb, which must not stall the daemon.
    const dir = this.genericDir(project, version);
    const genericStaging = `${dir}.incoming-${process.pid}-${Date.now()}`; // extractZip makes its parent
    let check: PackageCheck;
    try {
      check = await checkPackageOffThread(data, { limits: this.zipLimits, extractGenericTo: genericStaging });
    } catch (e) {
      if (e instanceof ZipRejected || e instanceof ManifestError || e instanceof PackageCheckBusy) throw new PackageError(e.message);
      throw e;
    }
    const replaced = this.oldEnvKeys(project, version);
    const kind = kindOf(kindOfCheck(check));
    const staging = check.manifest ? genericStaging : null;
    const claimed: string[] = [];
    try {
      let declared: Declared;
      try {
        declared = this.declared(check);
      } catch (e) {
        if (staging) await rm(staging, { recursive: true, force: true });
        throw e;
      }
      const installed = await kind.install({ project, version, data, check, declared, staging, claimed }, this.kindContext());
      const row: VersionRow = {
        project, version, kind: kind.name, uploaded_at: nowSeconds(), size: data.length, sha256: check.sha256,
        spiders: JSON.stringify([...installed.spiders].sort()), settings_module: installed.settings_module, manifest: installed.manifest,
        requirements: declared.python.length ? JSON.stringify(declared.python) : null, py_env: installed.py_env, node_env: installed.node_env,
      };
      this.s.upsert.run(row);
      await this.envs.releaseUnused(replaced.filter((k) => k !== row.py_env && k !== row.node_env));
      return this.toStored(row);
    } finally {
      for (const k of claimed) this.envs.unclaim(k);
    }
  }

  private kindContext(): KindContext {
    return {
      dataDir: this.dataDir, sandbox: this.sandbox, envs: this.envs, python: this.python, workDir: (p) => this.workDir(p),
      pythonEnv: (declared, project, version) => this.pythonEnv(declared, { project, version }),
    };
  }

  async deleteVersion(project: string, version: string): Promise<boolean> {
    const row = this.s.get.get(project, version) as VersionRow | undefined;
    if (!row) return false;
    this.s.delete.run(project, version);
    await rm(kindOf(row.kind).path(this.dataDir, project, version), { recursive: true, force: true });
    if (!this.hasProject(project)) await this.removeProjectDirs(project);
    await this.envs.releaseUnused([row.py_env, row.node_env]);
    return true;
  }

  async deleteProject(project: string): Promise<boolean> {
    if (!this.hasProject(project)) return false;
    const keys = this.oldEnvKeys(project, null);
    this.s.deleteProject.run(project);
    await this.removeProjectDirs(project);
    await this.envs.releaseUnused(keys);
    return true;
  }

  private async removeProjectDirs(project: string): Promise<void> {
    for (const top of ['eggs', 'packages']) await rm(join(this.dataDir, top, project), { recursive: true, force: true });
  }
}

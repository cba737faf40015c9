import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { openAsBlob } from 'node:fs';
import { join } from 'node:path';
import type { SqlDb } from '../store/sql_db.ts';
import type { PackageKind } from '../../common/types.ts';
import { newestVersion, sortVersions } from '../../common/versions.ts';
import { isZip, ZipRejected, DEFAULT_ZIP_LIMITS } from '../../common/packages/safe_zip.ts';
import { MANIFEST_NAME, ManifestError } from '../../common/packages/manifest.ts';
import { checkPackageOffThread, kindOfCheck, PackageCheckBusy } from '../../common/packages/package_checker.ts';
import { declaredFrom, RequirementsError } from '../../common/packages/requirements.ts';
import { SharedPackages } from './shared_packages.ts';

/** What a version declares it needs (issue 10): pip requirement lines and the Node lockfile's name. */
export interface VersionRequirements { python: string[]; node: string | null }

export class PackageRejected extends Error {
  /** 400: the package is bad; 503: the master is too busy checking other uploads to take it now. */
  constructor(message: string, readonly status = 400) {
    super(message);
  }
}

export interface VersionRow {
  project: string;
  version: string;
  kind: PackageKind;
  size: number;
  sha256: string;
  spiders: string | null;
  uploaded_at: number;
  uploaded_by: string | null;
  /** JSON VersionRequirements, null when the version declares nothing. */
  requirements: string | null;
}

/**
 * Every version uploaded to the master, kept on its disk so it can be pushed to nodes that join
 * later. Validated as a slave validates it (safe zip, Scrapy entry point or manifest) before it
 * is kept.
 */
export class PackageRepo {
  /**
   * On PostgreSQL, where several masters share the store, each package is also kept in the
   * database (content-addressed), so a master that did not take the upload can push the version.
   * On SQLite (one master) its disk is enough.
   */
  private readonly shared: SharedPackages | null;

  constructor(private readonly db: SqlDb, private readonly dir: string) {
    this.shared = db.dialect === 'postgres' ? new SharedPackages(db, join(dir, '.by-sha256')) : null;
  }

  private file(project: string, version: string): string { return join(this.dir, project, `${version}.zip`); }

  /**
   * Checks a package (in a worker thread: see package_checker.ts) and returns its kind, its
   * spiders for a generic package, and its sha256.
   */
  static async inspect(data: Buffer): Promise<{ kind: PackageKind; spiders: string[] | null; sha256: string; requirements: VersionRequirements | null }> {
    if (!isZip(data)) throw new PackageRejected('egg is not a ZIP file (if using curl, use egg=@path not egg=path)');
    try {
      const c = await checkPackageOffThread(data, { limits: DEFAULT_ZIP_LIMITS, extractGenericTo: null });
      // A bad requirements file is refused here already, as every node would refuse it.
      const d = declaredFrom(c.declared, c.manifest ? null : { topLevel: new Set(c.topLevel) });
      const requirements = d.python.length || d.node ? { python: d.python, node: d.node?.lockName ?? null } : null;
      const kind = kindOfCheck(c);
      if (c.manifest) return { kind, spiders: Object.keys(c.manifest.spiders).sort(), sha256: c.sha256, requirements };
      if (!c.settingsModule) {
        throw new PackageRejected(`egg has no Scrapy entry point: EGG-INFO/entry_points.txt needs "[scrapy]" with "settings = yourproject.settings", and there is no ${MANIFEST_NAME} for a generic package`);
      }
      return { kind, spiders: null, sha256: c.sha256, requirements };
    } catch (e) {
      if (e instanceof ZipRejected || e instanceof ManifestError || e instanceof RequirementsError) throw new PackageRejected(e.message);
      if (e instanceof PackageCheckBusy) throw new PackageRejected(e.message, e.status);
      throw e;
    }
  }

  async add(project: string, version: string, data: Buffer, by: string | null): Promise<VersionRow> {
    const { kind, spiders, sha256, requirements } = await PackageRepo.inspect(data);
    const path = this.file(project, version);
    await mkdir(join(path, '..'), { recursive: true });
    const staging = `${path}.incoming-${process.pid}-${Date.now()}`;
    await writeFile(staging, data);
    await rename(staging, path);
    // The bytes are in the database before the version is visible to another master.
    await this.shared?.put(sha256, data);
    const row: VersionRow = {
      project, version, kind, size: data.length, sha256,
      spiders: spiders ? JSON.stringify(spiders) : null, uploaded_at: Date.now(), uploaded_by: by,
      requirements: requirements ? JSON.stringify(requirements) : null,
    };
    await this.db.tx(async () => {
      await this.db.run(`INSERT INTO versions (project, version, kind, size, sha256, spiders, uploaded_at, uploaded_by, requirements)
                          VALUES (@project, @version, @kind, @size, @sha256, @spiders, @uploaded_at, @uploaded_by, @requirements)
                          ON CONFLICT (project, version) DO UPDATE SET kind = excluded.kind, size = excluded.size, sha256 = excluded.sha256,
                          spiders = excluded.spiders, uploaded_at = excluded.uploaded_at, uploaded_by = excluded.uploaded_by,
                          requirements = excluded.requirements`, { ...row });
      await this.db.run(`DELETE FROM deleted_versions WHERE project = ? AND (version = ? OR version = '*')`, [project, version]);
      await this.forgetVersion(project, version); // a re-upload must reach every node again
    });
    return row;
  }

  /** The version's package on this master's disk: with shared packages, the copy of its content (fetched once, checked against its hash). */
  private async local(project: string, version: string): Promise<string> {
    if (!this.shared) return this.file(project, version);
    const row = await this.get(project, version);
    if (!row) return this.file(project, version);
    return this.shared.localFile(row.sha256);
  }

  async read(project: string, version: string): Promise<Buffer> { return readFile(await this.local(project, version)); }
  /** The stored package as a file-backed Blob: sent to nodes without being read into memory first. */
  async blob(project: string, version: string): Promise<Blob> { return openAsBlob(await this.local(project, version)); }

  get(project: string, version: string): Promise<VersionRow | undefined> {
    return this.db.get<VersionRow>(`SELECT * FROM versions WHERE project = ? AND version = ?`, [project, version]);
  }
  all(): Promise<VersionRow[]> { return this.db.all<VersionRow>(`SELECT * FROM versions ORDER BY project, uploaded_at`); }
  async projects(): Promise<string[]> {
    return (await this.db.all<{ project: string }>(`SELECT project FROM versions GROUP BY project ORDER BY MIN(uploaded_at), project`)).map((r) => r.project);
  }
  async versions(project: string): Promise<string[]> {
    return sortVersions((await this.db.all<{ version: string }>(`SELECT version FROM versions WHERE project = ?`, [project])).map((r) => r.version));
  }
  async newest(project: string): Promise<string | null> { return newestVersion(await this.versions(project)); }
  async spiders(project: string, version: string): Promise<string[] | null> {
    const row = await this.get(project, version);
    return row?.spiders ? (JSON.parse(row.spiders) as string[]) : null;
  }
  async requirements(project: string, version: string): Promise<VersionRequirements | null> {
    const row = await this.get(project, version);
    return row?.requirements ? (JSON.parse(row.requirements) as VersionRequirements) : null;
  }
  /** Every project with its versions (oldest first) and its newest version's spiders, for the pages' pickers. */
  async catalogue(): Promise<Array<{ project: string; versions: string[]; spiders: string[] }>> {
    const out = [];
    for (const project of await this.projects()) {
      const versions = await this.versions(project);
      const newest = newestVersion(versions);
      out.push({ project, versions, spiders: (newest === null ? null : await this.spiders(project, newest)) ?? [] });
    }
    return out;
  }

  async setSpiders(project: string, version: string, spiders: string[]): Promise<void> {
    await this.db.run(`UPDATE versions SET spiders = ? WHERE project = ? AND version = ?`, [JSON.stringify([...spiders].sort()), project, version]);
  }

  async nodeHas(nodeId: number, project: string, version: string): Promise<void> {
    await this.db.run(`INSERT INTO node_versions (node_id, project, version) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, [nodeId, project, version]);
  }
  async nodeLacks(nodeId: number, project: string, version: string): Promise<void> {
    await this.db.run(`DELETE FROM node_versions WHERE node_id = ? AND project = ? AND version = ?`, [nodeId, project, version]);
  }
  async nodeLacksProject(nodeId: number, project: string): Promise<void> {
    await this.db.run(`DELETE FROM node_versions WHERE node_id = ? AND project = ?`, [nodeId, project]);
  }
  async nodesWith(project: string, version: string): Promise<Set<number>> {
    return new Set((await this.db.all<{ node_id: number }>(`SELECT node_id FROM node_versions WHERE project = ? AND version = ?`, [project, version])).map((r) => r.node_id));
  }
  versionsOnNode(nodeId: number): Promise<Array<{ project: string; version: string }>> {
    return this.db.all(`SELECT project, version FROM node_versions WHERE node_id = ?`, [nodeId]);
  }
  tombstones(): Promise<Array<{ project: string; version: string }>> { return this.db.all(`SELECT project, version FROM deleted_versions`); }

  private async forgetVersion(project: string, version: string): Promise<void> {
    await this.db.run(`DELETE FROM node_versions WHERE project = ? AND version = ?`, [project, version]);
  }

  private async tombstone(project: string, version: string): Promise<void> {
    await this.db.run(`INSERT INTO deleted_versions (project, version, deleted_at) VALUES (?, ?, ?)
                       ON CONFLICT (project, version) DO UPDATE SET deleted_at = excluded.deleted_at`, [project, version, Date.now()]);
  }

  async deleteVersion(project: string, version: string): Promise<boolean> {
    const deleted = await this.db.tx(async () => {
      if (!(await this.db.run(`DELETE FROM versions WHERE project = ? AND version = ?`, [project, version]))) return false;
      await this.forgetVersion(project, version);
      await this.tombstone(project, version);
      return true;
    });
    if (!deleted) return false;
    await rm(this.file(project, version), { force: true });
    await this.shared?.collect();
    return true;
  }

  async deleteProject(project: string): Promise<boolean> {
    const deleted = await this.db.tx(async () => {
      if (!(await this.db.run(`DELETE FROM versions WHERE project = ?`, [project]))) return false;
      await this.db.run(`DELETE FROM node_versions WHERE project = ?`, [project]);
      await this.tombstone(project, '*');
      return true;
    });
    if (!deleted) return false;
    await rm(join(this.dir, project), { recursive: true, force: true });
    await this.shared?.collect();
    return true;
  }
}

import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { openAsBlob } from 'node:fs';
import { join } from 'node:path';
import type { Db } from '../../common/sqlite.ts';
import type { PackageKind } from '../../common/types.ts';
import { newestVersion, sortVersions } from '../../common/versions.ts';
import { isZip, ZipRejected, DEFAULT_ZIP_LIMITS } from '../../common/packages/safe_zip.ts';
import { MANIFEST_NAME, ManifestError } from '../../common/packages/manifest.ts';
import { checkPackageOffThread, kindOfCheck, PackageCheckBusy } from '../../common/packages/package_checker.ts';
import { declaredFrom, RequirementsError } from '../../common/packages/requirements.ts';

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
  private readonly s;

  constructor(private readonly db: Db, private readonly dir: string) {
    this.s = {
      upsert: db.prepare(`INSERT INTO versions (project, version, kind, size, sha256, spiders, uploaded_at, uploaded_by, requirements)
                          VALUES (@project, @version, @kind, @size, @sha256, @spiders, @uploaded_at, @uploaded_by, @requirements)
                          ON CONFLICT (project, version) DO UPDATE SET kind = excluded.kind, size = excluded.size, sha256 = excluded.sha256,
                          spiders = excluded.spiders, uploaded_at = excluded.uploaded_at, uploaded_by = excluded.uploaded_by,
                          requirements = excluded.requirements`),
      get: db.prepare(`SELECT * FROM versions WHERE project = ? AND version = ?`),
      ofProject: db.prepare(`SELECT * FROM versions WHERE project = ?`),
      all: db.prepare(`SELECT * FROM versions ORDER BY project, uploaded_at`),
      projects: db.prepare(`SELECT project FROM versions GROUP BY project ORDER BY MIN(uploaded_at), project`),
      del: db.prepare(`DELETE FROM versions WHERE project = ? AND version = ?`),
      delProject: db.prepare(`DELETE FROM versions WHERE project = ?`),
      setSpiders: db.prepare(`UPDATE versions SET spiders = ? WHERE project = ? AND version = ?`),
      nodeHas: db.prepare(`INSERT OR IGNORE INTO node_versions (node_id, project, version) VALUES (?, ?, ?)`),
      nodeLacks: db.prepare(`DELETE FROM node_versions WHERE node_id = ? AND project = ? AND version = ?`),
      nodeLacksProject: db.prepare(`DELETE FROM node_versions WHERE node_id = ? AND project = ?`),
      nodesWith: db.prepare(`SELECT node_id FROM node_versions WHERE project = ? AND version = ?`),
      versionsOnNode: db.prepare(`SELECT project, version FROM node_versions WHERE node_id = ?`),
      forgetVersion: db.prepare(`DELETE FROM node_versions WHERE project = ? AND version = ?`),
      forgetProject: db.prepare(`DELETE FROM node_versions WHERE project = ?`),
      tombstone: db.prepare(`INSERT OR REPLACE INTO deleted_versions (project, version, deleted_at) VALUES (?, ?, ?)`),
      untombstone: db.prepare(`DELETE FROM deleted_versions WHERE project = ? AND (version = ? OR version = '*')`),
      tombstones: db.prepare(`SELECT project, version FROM deleted_versions`),
    };
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
    const row: VersionRow = {
      project, version, kind, size: data.length, sha256,
      spiders: spiders ? JSON.stringify(spiders) : null, uploaded_at: Date.now(), uploaded_by: by,
      requirements: requirements ? JSON.stringify(requirements) : null,
    };
    this.db.transaction(() => {
      this.s.upsert.run(row);
      this.s.untombstone.run(project, version);
      this.s.forgetVersion.run(project, version); // a re-upload must reach every node again
    })();
    return row;
  }

  read(project: string, version: string): Promise<Buffer> { return readFile(this.file(project, version)); }
  /** The stored package as a file-backed Blob: sent to nodes without being read into memory first. */
  blob(project: string, version: string): Promise<Blob> { return openAsBlob(this.file(project, version)); }

  get(project: string, version: string): VersionRow | undefined { return this.s.get.get(project, version) as VersionRow | undefined; }
  all(): VersionRow[] { return this.s.all.all() as VersionRow[]; }
  projects(): string[] { return (this.s.projects.all() as Array<{ project: string }>).map((r) => r.project); }
  versions(project: string): string[] { return sortVersions((this.s.ofProject.all(project) as VersionRow[]).map((r) => r.version)); }
  newest(project: string): string | null { return newestVersion(this.versions(project)); }
  spiders(project: string, version: string): string[] | null {
    const row = this.get(project, version);
    return row?.spiders ? (JSON.parse(row.spiders) as string[]) : null;
  }
  requirements(project: string, version: string): VersionRequirements | null {
    const row = this.get(project, version);
    return row?.requirements ? (JSON.parse(row.requirements) as VersionRequirements) : null;
  }
  setSpiders(project: string, version: string, spiders: string[]): void { this.s.setSpiders.run(JSON.stringify([...spiders].sort()), project, version); }

  nodeHas(nodeId: number, project: string, version: string): void { this.s.nodeHas.run(nodeId, project, version); }
  nodeLacks(nodeId: number, project: string, version: string): void { this.s.nodeLacks.run(nodeId, project, version); }
  nodeLacksProject(nodeId: number, project: string): void { this.s.nodeLacksProject.run(nodeId, project); }
  nodesWith(project: string, version: string): Set<number> {
    return new Set((this.s.nodesWith.all(project, version) as Array<{ node_id: number }>).map((r) => r.node_id));
  }
  versionsOnNode(nodeId: number): Array<{ project: string; version: string }> {
    return this.s.versionsOnNode.all(nodeId) as Array<{ project: string; version: string }>;
  }
  tombstones(): Array<{ project: string; version: string }> { return this.s.tombstones.all() as Array<{ project: string; version: string }>; }

  async deleteVersion(project: string, version: string): Promise<boolean> {
    if (!this.get(project, version)) return false;
    this.db.transaction(() => {
      this.s.del.run(project, version);
      this.s.forgetVersion.run(project, version);
      this.s.tombstone.run(project, version, Date.now());
    })();
    await rm(this.file(project, version), { force: true });
    return true;
  }

  async deleteProject(project: string): Promise<boolean> {
    if (this.versions(project).length === 0) return false;
    this.db.transaction(() => {
      this.s.delProject.run(project);
      this.s.forgetProject.run(project);
      this.s.tombstone.run(project, '*', Date.now());
    })();
    await rm(join(this.dir, project), { recursive: true, force: true });
    return true;
  }
}

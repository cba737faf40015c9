/**
 * Everything that is learnt from an uploaded package's bytes, in one pass: the whole archive
 * verified by safe_zip (structure, names, limits, every entry inflated and CRC-checked), its
 * spiderplane.json or Scrapy entry point read, its sha256, and — for a generic package when asked —
 * its files unpacked (extractZip: all or nothing). CPU-heavy by nature (a package may unpack to
 * 1 GiB), so the daemons run it in a worker thread: see package_checker.ts.
 *
 * The small files it reads (spiderplane.json, EGG-INFO/entry_points.txt) are refused above
 * MAX_META_BYTES, so what comes back to the caller's thread is small whatever the upload.
 */
import { createHash } from 'node:crypto';
import { extractZip, inspectZip, readZipEntry, ZipRejected, type ZipLimits } from './safe_zip.ts';
import { scrapySettingsModule } from './egg.ts';
import { MANIFEST_NAME, parseManifest, type Manifest } from './manifest.ts';
import { LOCKFILES, PACKAGE_JSON, REQUIREMENTS_TXT, REQUIRES_TXT, topLevelNames, type DeclaredFiles } from './requirements.ts';

export const ENTRY_POINTS_NAME = 'EGG-INFO/entry_points.txt';
export const MAX_META_BYTES = 1024 * 1024;

export interface PackageCheckOptions {
  limits: ZipLimits;
  /** Unpack a generic package (one with spiderplane.json) into this folder, which must not exist yet. */
  extractGenericTo: string | null;
}

export interface PackageCheck {
  /** The parsed spiderplane.json: a generic package. */
  manifest: Manifest | null;
  /** The [scrapy] settings module of EGG-INFO/entry_points.txt (null: none; only looked for without a manifest). */
  settingsModule: string | null;
  sha256: string;
  size: number;
  /** True when the generic package was unpacked into extractGenericTo. */
  extracted: boolean;
  /** The dependency files the package declares (requirements.ts reads them). */
  declared: DeclaredFiles;
  /** Eggs: import names of the egg's top-level entries (what an uberegg bundles). */
  topLevel: string[];
}

function declaredFiles(data: Buffer, limits: ZipLimits, egg: boolean): DeclaredFiles {
  let lockfile: DeclaredFiles['lockfile'] = null;
  if (!egg) {
    for (const name of LOCKFILES) {
      const text = metaFile(data, name, limits);
      if (text !== null) { lockfile = { name, text }; break; }
    }
  }
  return {
    requiresTxt: egg ? metaFile(data, REQUIRES_TXT, limits) : null,
    requirementsTxt: metaFile(data, REQUIREMENTS_TXT, limits),
    packageJson: egg ? null : metaFile(data, PACKAGE_JSON, limits),
    lockfile,
  };
}

function metaFile(data: Buffer, name: string, limits: ZipLimits): string | null {
  const bytes = readZipEntry(data, name, limits);
  if (bytes && bytes.length > MAX_META_BYTES) throw new ZipRejected(`${name} is larger than ${MAX_META_BYTES / 1024 / 1024} MiB`);
  return bytes ? bytes.toString('utf8') : null;
}

/** Throws ZipRejected (a bad archive) or ManifestError (a bad spiderplane.json). */
export async function checkPackage(data: Buffer, opts: PackageCheckOptions): Promise<PackageCheck> {
  const sha256 = createHash('sha256').update(data).digest('hex');
  const manifestText = metaFile(data, MANIFEST_NAME, opts.limits);
  if (manifestText !== null) {
    const manifest = parseManifest(manifestText);
    if (opts.extractGenericTo !== null) await extractZip(data, opts.extractGenericTo, opts.limits);
    else inspectZip(data, opts.limits);
    return { manifest, settingsModule: null, sha256, size: data.length, extracted: opts.extractGenericTo !== null, declared: declaredFiles(data, opts.limits, false), topLevel: [] };
  }
  const entries = inspectZip(data, opts.limits);
  const entryPoints = metaFile(data, ENTRY_POINTS_NAME, opts.limits);
  return {
    manifest: null, settingsModule: entryPoints === null ? null : scrapySettingsModule(entryPoints), sha256, size: data.length, extracted: false,
    declared: declaredFiles(data, opts.limits, true), topLevel: [...topLevelNames(entries.map((e) => e.name))],
  };
}

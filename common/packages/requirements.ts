/**
 * What a package declares it needs, read from its own files, and the keys of the environments
 * that satisfy it. Pure (no I/O): the bytes are read by package_check.ts in a worker thread.
 *
 *   Scrapy egg:  EGG-INFO/requires.txt (setuptools' install_requires, extras sections dropped)
 *                and/or requirements.txt at the egg's root.
 *   Generic:     requirements.txt (Python) and/or package.json + package-lock.json or
 *                npm-shrinkwrap.json (Node).
 * Guarantee: the same requirements (whatever their order, blank lines and comments) give the same
 * key, and a key names only [a-z0-9-], so it is safe as a folder name.
 */
import { createHash } from 'node:crypto';

export const REQUIRES_TXT = 'EGG-INFO/requires.txt';
export const REQUIREMENTS_TXT = 'requirements.txt';
export const PACKAGE_JSON = 'package.json';
export const LOCKFILES = ['npm-shrinkwrap.json', 'package-lock.json'] as const;

export class RequirementsError extends Error {}

/** The raw dependency files found in a package (null: absent). */
export interface DeclaredFiles {
  requiresTxt: string | null;
  requirementsTxt: string | null;
  packageJson: string | null;
  lockfile: { name: string; text: string } | null;
}

export interface NodeDeps {
  /** sha256 of what the lockfile and package.json say about dependencies (not the package's own name or version). */
  lockHash: string;
  lockName: string;
  /** Whether install scripts may run: package.json's "spiderplane": { "npmScripts": true }. */
  scripts: boolean;
}

/** What a package needs: sorted, de-duplicated pip requirement lines, and the Node lockfile. */
export interface Declared {
  python: string[];
  node: NodeDeps | null;
}

/** Lines of a requires.txt before its first [extra] / [:marker] section: the unconditional ones. */
export function requiresTxtLines(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith('[')) break;
    if (line) out.push(line);
  }
  return out;
}

/**
 * A requirements.txt's requirement lines, comments dropped. Options that point at other files
 * (-r, -c, -e) cannot be followed in an uploaded package and are refused by name; index options
 * (--index-url…) are refused too: where pip looks is the slave's configuration, not the package's.
 */
export function requirementsTxtLines(text: string, file = REQUIREMENTS_TXT): string[] {
  const out: string[] = [];
  const joined = text.replace(/\\\r?\n/g, ' ');
  for (const raw of joined.split(/\r?\n/)) {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (!line) continue;
    if (line.startsWith('-')) {
      throw new RequirementsError(`${file}: '${line}' is not supported: list each requirement on its own line (where pip looks — index, wheelhouse — is the slave's pip configuration)`);
    }
    out.push(line.replace(/\s+/g, ' '));
  }
  return out;
}

/** Sorted, unique, whitespace-normalized lines: what the key and the build use. */
export function normalizeRequirements(lines: readonly string[]): string[] {
  return [...new Set(lines.map((l) => l.trim().replace(/\s+/g, ' ')).filter(Boolean))].sort();
}

/** The requirement's project name ("Scrapy-Redis>=0.7; python_version>'3'" -> "scrapy-redis"). */
export function requirementName(line: string): string {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)/.exec(line.trim());
  return (m ? m[1]! : line.trim()).toLowerCase().replace(/[._]+/g, '-');
}

/**
 * Requirements an uberegg (scrapyd-deploy --include-dependencies) already carries: a top-level
 * folder or module of the egg with the requirement's import name, or its *.dist-info / *.egg-info.
 */
export function bundledRequirement(line: string, topLevelNames: ReadonlySet<string>): boolean {
  const name = requirementName(line).replace(/-/g, '_');
  return topLevelNames.has(name);
}

/** Lower-cased import names of an egg's top-level entries (folders, .py files, *.dist-info…). */
export function topLevelNames(entryNames: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const n of entryNames) {
    const first = n.split('/')[0]!;
    if (!first || first === 'EGG-INFO') continue;
    const base = first.replace(/\.py$/, '').replace(/-[^-]*\.(dist-info|egg-info)$/, '').replace(/\.(dist-info|egg-info)$/, '');
    out.add(base.toLowerCase().replace(/[-.]+/g, '_'));
  }
  return out;
}

const DEPENDENCY_FIELDS = ['dependencies', 'optionalDependencies', 'peerDependencies', 'bundleDependencies', 'bundledDependencies', 'overrides'] as const;

function pickDependencyFields(v: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!v || typeof v !== 'object') return out;
  for (const f of DEPENDENCY_FIELDS) if (f in v) out[f] = (v as Record<string, unknown>)[f];
  return out;
}

/**
 * What decides a Node environment: package.json's dependency fields and the lockfile's resolved
 * tree, without the package's own name and version — so the next version of a package with the
 * same lockfile shares its environment.
 */
export function nodeDependencyFacts(manifest: unknown, lock: unknown): unknown {
  const l = (lock ?? {}) as { lockfileVersion?: unknown; packages?: Record<string, unknown>; dependencies?: unknown };
  const packages = l.packages ? { ...l.packages, '': pickDependencyFields(l.packages['']) } : null;
  return { manifest: pickDependencyFields(manifest), lockfileVersion: l.lockfileVersion ?? null, packages, dependencies: packages ? null : l.dependencies ?? null };
}

/** Reads what a package declares. Throws RequirementsError naming the file on a bad one. */
export function declaredFrom(files: DeclaredFiles, egg: { topLevel: ReadonlySet<string> } | null): Declared {
  const lines: string[] = [];
  if (files.requiresTxt !== null) {
    const own = requiresTxtLines(files.requiresTxt);
    // An uberegg carries its dependencies inside: those need no environment.
    lines.push(...(egg ? own.filter((l) => !bundledRequirement(l, egg.topLevel)) : own));
  }
  if (files.requirementsTxt !== null) lines.push(...requirementsTxtLines(files.requirementsTxt));
  let node: NodeDeps | null = null;
  if (files.lockfile !== null) {
    if (files.packageJson === null) throw new RequirementsError(`${files.lockfile.name} without a ${PACKAGE_JSON}: npm ci needs both`);
    let manifest: unknown;
    try {
      manifest = JSON.parse(files.packageJson);
    } catch (e) {
      throw new RequirementsError(`${PACKAGE_JSON} is not valid JSON: ${(e as Error).message}`);
    }
    let lock: unknown;
    try {
      lock = JSON.parse(files.lockfile.text);
    } catch (e) {
      throw new RequirementsError(`${files.lockfile.name} is not valid JSON: ${(e as Error).message}`);
    }
    const sp = (manifest as { spiderplane?: { npmScripts?: unknown } } | null)?.spiderplane;
    node = {
      lockHash: createHash('sha256').update(JSON.stringify(nodeDependencyFacts(manifest, lock))).digest('hex'),
      lockName: files.lockfile.name,
      scripts: sp?.npmScripts === true,
    };
  }
  return { python: normalizeRequirements(lines), node };
}

/** The key of a Python environment: interpreter path and version, and the requirements. */
export function pythonEnvKey(interpreter: string, interpreterVersion: string, requirements: readonly string[]): string {
  const h = createHash('sha256').update(`${interpreter}\n${interpreterVersion}\n${requirements.join('\n')}`).digest('hex');
  return `py-${h.slice(0, 24)}`;
}

/** The key of a Node environment: the Node version, the lockfile (with its package.json) and whether scripts run. */
export function nodeEnvKey(nodeVersion: string, deps: NodeDeps): string {
  const h = createHash('sha256').update(`${nodeVersion}\n${deps.lockHash}\n${deps.scripts ? 'scripts' : 'no-scripts'}`).digest('hex');
  return `node-${h.slice(0, 24)}`;
}

export const ENV_KEY = /^(py|node)-[0-9a-f]{24}$/;

/**
 * The lines of pip's or npm's output that say why it failed: its ERROR lines (pip) or
 * "npm ERR!"/"npm error" lines, else the last few non-empty lines. Never more than `max` lines.
 */
export function failureReason(output: string, max = 8): string {
  const lines = output.split(/\r?\n/).map((l) => l.trimEnd()).filter((l) => l.trim());
  const marked = lines.filter((l) => /^(ERROR:|npm ERR!|npm error)/.test(l));
  const chosen = marked.length ? marked : lines;
  return chosen.slice(-max).join('\n');
}

/** The requirement pip names in its failure ("No matching distribution found for X"), if any. */
export function failedRequirement(output: string): string | null {
  const m = /No matching distribution found for (\S+)/.exec(output) ?? /satisfies the requirement (\S+)/.exec(output);
  return m ? m[1]! : null;
}

/**
 * Per-project dependency environments: Python virtualenvs (pip) and Node node_modules (npm ci),
 * built when a version is deployed and shared by every version that needs the same thing.
 *
 * Guarantees:
 *  - Keyed by what determines them (requirements.ts): the same requirements build once, and two
 *    uploads that need the same environment at once share one build (an in-process promise per key).
 *  - An environment is complete only when envs/KEY exists: a symlink to its build folder, created
 *    (by rename) after the build's marker file was written. A build killed half-way leaves a
 *    folder no link points to, removed at the next start; a venv is never moved after it is
 *    built (its scripts name their folder), which is why the link, not the folder, is renamed.
 *  - pip and npm run as the spiders' user with the allow-listed environment (SpiderSandbox), so
 *    the slave's PIP_* / NPM_* / pip.conf / .npmrc apply; as child processes, never blocking the loop.
 *  - An environment no version uses any more is deleted.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readlinkSync, unlinkSync } from 'node:fs';
import { chmod, cp, lchown, lstat, mkdir, readdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Db } from '../../common/sqlite.ts';
import { nowSeconds } from '../../common/scrapyd_time.ts';
import { ENV_KEY, failedRequirement, failureReason, nodeEnvKey, pythonEnvKey, type NodeDeps } from '../../common/packages/requirements.ts';
import type { SpiderSandbox } from '../runner/sandbox.ts';
import { giveTree, lockTree, removeSpiderTree } from '../runner/tree_lock.ts';

export class EnvironmentBuildError extends Error {}

const MARKER = '.spiderplane-complete';
const BUILD_TIMEOUT_MS = 30 * 60_000;
const TAIL_BYTES = 64 * 1024;

export interface EnvRow {
  key: string;
  kind: 'python' | 'node';
  requirements: string;
  built_at: number;
  last_used: number | null;
  size: number;
  build_seconds: number;
}

export interface EnvInfo {
  key: string;
  kind: 'python' | 'node';
  requirements: string[];
  size: number;
  versions: Array<{ project: string; version: string }>;
  built_at: number;
  last_used: number | null;
  build_seconds: number;
  log_url: string;
}

/** A build in progress, for /envs.json's "building" (the master's deploy page follows it). */
export interface BuildInfo {
  key: string;
  kind: 'python' | 'node';
  requirements: string[];
  started_at: number;
  /** The uploads waiting for it. */
  versions: Array<{ project: string; version: string }>;
  log_url: string;
}

export interface ForVersion { project: string; version: string }

export function envLogUrl(key: string): string { return `/envs/${key}/log`; }

export class EnvironmentStore {
  readonly dir: string;
  readonly logsDir: string;
  private readonly building = new Map<string, Promise<string>>();
  private readonly buildInfo = new Map<string, BuildInfo>();
  /** Keys an upload is about to use (between its build and its row): never deleted meanwhile. */
  private readonly claimed = new Map<string, number>();
  private readonly pythonVersions = new Map<string, Promise<string>>();
  private readonly s;

  constructor(private readonly db: Db, dataDir: string, private readonly sandbox: SpiderSandbox) {
    this.dir = join(dataDir, 'envs');
    this.logsDir = join(dataDir, 'logs', 'envs');
    mkdirSync(this.dir, { recursive: true });
    mkdirSync(this.logsDir, { recursive: true });
    this.s = {
      get: db.prepare(`SELECT * FROM envs WHERE key = ?`),
      all: db.prepare(`SELECT * FROM envs ORDER BY built_at`),
      upsert: db.prepare(`INSERT INTO envs (key, kind, requirements, built_at, last_used, size, build_seconds) VALUES (@key, @kind, @requirements, @built_at, @last_used, @size, @build_seconds)
                          ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, requirements = excluded.requirements, built_at = excluded.built_at, size = excluded.size, build_seconds = excluded.build_seconds`),
      touch: db.prepare(`UPDATE envs SET last_used = ? WHERE key = ?`),
      delete: db.prepare(`DELETE FROM envs WHERE key = ?`),
      users: db.prepare(`SELECT project, version FROM versions WHERE py_env = ? OR node_env = ? ORDER BY project, uploaded_at`),
      used: db.prepare(`SELECT 1 FROM versions WHERE py_env = ? OR node_env = ? LIMIT 1`),
    };
  }

  /** The stable path of a complete environment (envs/KEY), or null when it is not built. */
  pathOf(key: string): string | null {
    const link = join(this.dir, key);
    try {
      const target = readlinkSync(link);
      return existsSync(join(this.dir, target, MARKER)) ? link : null;
    } catch {
      return null;
    }
  }

  /** Removes build folders no envs/KEY link points to: builds a crash (kill -9) interrupted. */
  async removeUnfinished(): Promise<number> {
    const names = await readdir(this.dir);
    const linked = new Set<string>();
    for (const n of names) {
      if (!ENV_KEY.test(n)) continue;
      try { linked.add(await readlink(join(this.dir, n))); } catch { /* not a link */ }
    }
    let removed = 0;
    for (const n of names) {
      if (ENV_KEY.test(n) || linked.has(n) || n === '.home') continue;
      if (this.isBuildingFolder(n)) continue;
      await this.removeTree(join(this.dir, n));
      removed++;
    }
    // Complete environments no version uses (a crash between a build and its version's row).
    await this.releaseUnused(names.filter((n) => ENV_KEY.test(n)));
    return removed;
  }

  private isBuildingFolder(name: string): boolean {
    for (const key of this.building.keys()) if (name.startsWith(`${key}.`)) return true;
    return false;
  }

  /** Marks a key as about to be used by a version; release with unclaim() once its row is written (or not). */
  claim(key: string): void { this.claimed.set(key, (this.claimed.get(key) ?? 0) + 1); }
  unclaim(key: string): void {
    const n = (this.claimed.get(key) ?? 1) - 1;
    if (n <= 0) this.claimed.delete(key); else this.claimed.set(key, n);
  }

  /** The key of the environment for these requirements, built by `python` (a venv that sees its site-packages). */
  async pythonKey(python: string, requirements: readonly string[]): Promise<string> {
    return pythonEnvKey(python, await this.interpreterVersion(python), requirements);
  }

  nodeKey(deps: NodeDeps): string { return nodeEnvKey(process.version, deps); }

  /** Builds (once) the virtualenv for `requirements`; returns its path. Claims the key for the caller. */
  async ensurePython(key: string, python: string, requirements: readonly string[], forVersion: ForVersion): Promise<string> {
    return this.ensure(key, 'python', requirements.join('\n'), forVersion, async (buildDir, log) => {
      this.sandbox.ownFolder(buildDir); // empty: the venv is made in it as the spiders' user
      await this.run(python, ['-m', 'venv', '--system-site-packages', '--without-pip', buildDir], this.dir, log, 'a virtualenv');
      // The interpreter's own pip installs into the venv (--python): the venv needs no pip of its
      // own, and pip reads the slave's standard configuration (PIP_*, pip.conf). The requirements
      // go as arguments, not as a file: root never writes into a folder the spiders' user owns
      // (a symlink planted there would make root write wherever it points). None starts with '-'.
      await this.run(python, ['-m', 'pip', '--python', join(buildDir, 'bin', 'python'), 'install', '--no-input', '--disable-pip-version-check', '--', ...requirements], this.dir, log, `requirements ${requirements.join(', ')}`);
    });
  }

  /**
   * Builds (once) node_modules for a package's lockfile with `npm ci --omit=dev` (install scripts
   * off unless allowed) in a copy of the package (so file: dependencies inside it resolve); returns
   * the environment's path, whose node_modules the package links to.
   */
  async ensureNode(key: string, deps: NodeDeps, packageDir: string, forVersion: ForVersion): Promise<string> {
    return this.ensure(key, 'node', `${deps.lockName} sha256:${deps.lockHash.slice(0, 16)}`, forVersion, async (buildDir, log) => {
      await cp(packageDir, buildDir, { recursive: true, force: true, filter: (p) => !p.endsWith('/node_modules') });
      const who = this.sandbox.who;
      if (who) await giveTree(buildDir, who.uid, who.gid); // npm runs as the spiders' user; a package may have many files
      const args = ['ci', '--omit=dev', '--no-audit', '--no-fund', '--no-update-notifier'];
      if (!deps.scripts) args.push('--ignore-scripts');
      await this.run('npm', args, buildDir, log, `the dependencies locked in ${deps.lockName}`);
      // Keep only what the spiders need from the copy: node_modules and the files that made it.
      // As the spiders' user, like the build: root deletes nothing in a folder that user can change.
      const extra = (await readdir(buildDir)).filter((name) => name !== 'node_modules' && name !== 'package.json' && name !== deps.lockName);
      if (extra.length) await this.run('rm', ['-rf', '--', ...extra], buildDir, log, 'the copy of the package');
      await mkdir(join(buildDir, 'node_modules'), { recursive: true });
    });
  }

  private async ensure(key: string, kind: 'python' | 'node', requirements: string, forVersion: ForVersion, build: (buildDir: string, log: NodeJS.WritableStream) => Promise<void>): Promise<string> {
    if (!ENV_KEY.test(key)) throw new EnvironmentBuildError(`bad environment key ${key}`);
    this.claim(key);
    try {
      const inFlight = this.building.get(key);
      if (inFlight) {
        this.buildInfo.get(key)?.versions.push(forVersion);
        return await inFlight;
      }
      const done = this.pathOf(key);
      if (done) {
        if (!this.s.get.get(key)) this.s.upsert.run({ key, kind, requirements, built_at: nowSeconds(), last_used: null, size: await folderSize(join(this.dir, readlinkSync(done))), build_seconds: 0 });
        return done;
      }
      this.buildInfo.set(key, { key, kind, requirements: requirements.split('\n'), started_at: nowSeconds(), versions: [forVersion], log_url: envLogUrl(key) });
      const p = this.build(key, kind, requirements, build);
      this.building.set(key, p);
      try {
        return await p;
      } finally {
        this.building.delete(key);
        this.buildInfo.delete(key);
      }
    } catch (e) {
      this.unclaim(key);
      throw e;
    }
  }

  private async build(key: string, kind: 'python' | 'node', requirements: string, build: (buildDir: string, log: NodeJS.WritableStream) => Promise<void>): Promise<string> {
    const started = Date.now();
    const name = `${key}.${process.pid}-${randomBytes(4).toString('hex')}`;
    const buildDir = join(this.dir, name);
    const logPath = join(this.logsDir, `${key}.log`);
    const log = createWriteStream(logPath, { mode: 0o600 });
    await new Promise((r) => log.once('open', r));
    log.write(`# ${new Date().toISOString()} building ${kind} environment ${key}\n# ${requirements.replace(/\n/g, ', ')}\n`);
    try {
      await this.prepareHome();
      // Root's until the build step gives it away: root writes nothing into a folder the spiders'
      // user already owns (a symlink planted there would be followed).
      await mkdir(buildDir, { mode: 0o755 });
      await build(buildDir, log);
      // Built as the spiders' user; kept as the daemon's, read-only to spiders, so no spider can
      // change an environment that other versions (other projects) run with.
      // Locked folder by folder before it is listed, through O_NOFOLLOW handles (tree_lock.ts).
      if (this.sandbox.who) await lockTree(buildDir, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
      const builtAt = nowSeconds();
      await writeFile(join(buildDir, MARKER), JSON.stringify({ key, built_at: builtAt }) + '\n', { mode: 0o644, flag: 'wx' });
      // The link appears at once (rename), and only after the marker: never a half-built environment.
      const tmpLink = join(this.dir, `${name}.link`);
      await symlink(name, tmpLink);
      const old = await readlink(join(this.dir, key)).catch(() => null);
      await rename(tmpLink, join(this.dir, key));
      if (old) await this.removeTree(join(this.dir, old));
      const seconds = (Date.now() - started) / 1000;
      this.s.upsert.run({ key, kind, requirements, built_at: builtAt, last_used: null, size: await folderSize(buildDir), build_seconds: seconds });
      log.write(`# built in ${seconds.toFixed(1)} s\n`);
      return join(this.dir, key);
    } catch (e) {
      log.write(`# failed: ${(e as Error).message}\n`);
      await this.removeTree(buildDir);
      throw e;
    } finally {
      await new Promise<void>((r) => log.end(r));
    }
  }

  /** Removes an environment folder; one the spiders' user wrote is locked first (tree_lock.ts). */
  private async removeTree(dir: string): Promise<void> {
    if (this.sandbox.who) await removeSpiderTree(dir, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
    else await rm(dir, { recursive: true, force: true });
  }

  /** HOME of the builds when the run-as user has none: caches (pip's, npm's) live there, not in an environment. */
  private async prepareHome(): Promise<void> {
    const home = join(this.dir, '.home');
    await mkdir(home, { recursive: true, mode: 0o700 });
    this.sandbox.ownFolder(home);
  }

  /** Runs a build step as the spiders' user, its output into the log; fails with the tool's own last lines. */
  private run(command: string, args: string[], cwd: string, log: NodeJS.WritableStream, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      log.write(`$ ${command} ${args.join(' ')}\n`);
      const child = spawn(command, args, {
        cwd, env: { ...this.sandbox.baseEnv(join(this.dir, '.home')), PYTHONDONTWRITEBYTECODE: '1' },
        stdio: ['ignore', 'pipe', 'pipe'], timeout: BUILD_TIMEOUT_MS, ...this.sandbox.spawnIdentity(),
      });
      let tail = '';
      const take = (chunk: Buffer) => {
        log.write(chunk);
        const text = chunk.toString('utf8');
        tail = (tail + text).slice(-TAIL_BYTES);
      };
      child.stdout.on('data', take);
      child.stderr.on('data', take);
      child.once('error', (err) => reject(new EnvironmentBuildError(`could not start ${command}: ${err.message}`)));
      child.once('close', (code, signal) => {
        if (code === 0) return resolve();
        const tool = command === 'npm' ? 'npm' : args.includes('pip') ? 'pip' : command;
        const named = failedRequirement(tail);
        reject(new EnvironmentBuildError(`could not install ${named ? `requirement '${named}'` : what}: ${tool} ${signal ? `was stopped by ${signal}` : `exited with ${code}`}:\n${failureReason(tail)}`));
      });
    });
  }

  private interpreterVersion(python: string): Promise<string> {
    const known = this.pythonVersions.get(python);
    if (known) return known;
    const version = new Promise<string>((resolve) => {
      const child = spawn(python, ['-c', 'import sys; print(sys.version)'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
      child.once('error', () => resolve('unknown'));
      child.once('close', () => resolve(out.trim() || 'unknown'));
    });
    this.pythonVersions.set(python, version);
    return version;
  }

  touch(key: string | null): void { if (key) this.s.touch.run(nowSeconds(), key); }

  /** Deletes each environment of `keys` that no version uses (nor an upload in progress). */
  async releaseUnused(keys: Iterable<string | null>): Promise<void> {
    for (const key of keys) {
      if (!key || !ENV_KEY.test(key) || this.claimed.has(key) || this.building.has(key)) continue;
      if (this.s.used.get(key, key)) continue;
      const link = join(this.dir, key);
      // The link goes before any await: an upload that looks for this environment from now on
      // builds a new one (in a folder of its own) instead of taking one being deleted.
      let target: string | null = null;
      try {
        target = readlinkSync(link);
        unlinkSync(link);
      } catch {
        // no link: nothing built
      }
      if (target) await this.removeTree(join(this.dir, target));
      this.s.delete.run(key);
      await rm(join(this.logsDir, `${key}.log`), { force: true });
    }
  }

  /** Builds in progress, oldest first. */
  inProgress(): BuildInfo[] { return [...this.buildInfo.values()].map((b) => ({ ...b, versions: [...b.versions] })); }

  list(): EnvInfo[] {
    return (this.s.all.all() as EnvRow[]).filter((r) => this.pathOf(r.key)).map((r) => ({
      key: r.key, kind: r.kind, requirements: r.requirements.split('\n').filter(Boolean), size: r.size,
      versions: this.s.users.all(r.key, r.key) as Array<{ project: string; version: string }>,
      built_at: r.built_at, last_used: r.last_used, build_seconds: r.build_seconds, log_url: envLogUrl(r.key),
    }));
  }

  logPath(key: string): string | null {
    if (!ENV_KEY.test(key)) return null;
    const p = join(this.logsDir, `${key}.log`);
    return existsSync(p) ? p : null;
  }
}

/** Bytes under a folder (files as stored), walked asynchronously; symlinks are not followed. */
async function folderSize(dir: string): Promise<number> {
  let total = 0;
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    let entries;
    try { entries = await readdir(d, { withFileTypes: true }); } catch { continue; }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) total += (await lstat(p).catch(() => ({ size: 0 }))).size;
    }
  }
  return total;
}

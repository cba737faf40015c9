/**
 * The warm Python start (on by default; --no-forkserver turns it off): one forkserver
 * (forkserver.py) per Python environment — the slave's interpreter and each version's virtualenv,
 * keyed by the interpreter's path, so a project that pins its own Scrapy gets its own forkserver in
 * its own environment. Each starts with the first job or egg upload that needs it (the slave's own
 * at daemon start when a Scrapy egg is stored), so a slave without eggs runs none.
 *
 * Design, and why it keeps keepers, cancel and adoption as they are: the daemon still starts every
 * spider under its keeper (common/keeper.mjs), which holds the master lease; only the keeper's
 * spawn changes. Given a forkserver's socket, the keeper hands it the job's log fds and the
 * `python -m scrapy crawl ...` command; the forkserver forks the spider (its own session, so the
 * INT/TERM/KILL ladder signals its group), tells the keeper its pid — which the daemon records
 * with its start time for adoption, as before — and, as its parent, reaps it and sends the keeper
 * its exit status, which the keeper reports as it does for a spawned spider.
 *
 * Guarantees: a forkserver runs as the spiders' user (it imports the environment's packages, which
 * are the project's); its socket lives in a folder of that user under the daemon's data folder
 * (0711), so only that user and root reach it. The keeper accepts only a pid that leads its own
 * process group and runs as that user. Never blocking a launch: while an environment's forkserver
 * cannot start, targetFor() answers null and the job is spawned the plain way; while one is
 * starting, the keeper waits for its socket as long as its process lives (a spawn would pay the same
 * imports); a forkserver that exits is started again at the next job (at most once per 10 s after
 * a failure to start).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { removeSpiderTree } from './tree_lock.ts';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SpiderSandbox } from './sandbox.ts';
import { setMode } from '../../common/private_files.ts';
import type { SpawnSpec } from './spider_command.ts';

const SCRIPT = readFileSync(fileURLToPath(new URL('./forkserver.py', import.meta.url)), 'utf8');
const RETRY_AFTER_FAILURE_MS = 10_000;

interface Server {
  python: string;
  sock: string;
  proc: ChildProcess;
  ready: boolean;
}

export interface ForkserverTarget { sock: string; python: string; pid: number }

export class Forkservers {
  private readonly servers = new Map<string, Server>();
  private readonly failedAt = new Map<string, number>();
  private readonly root: string;
  private stopped = false;

  constructor(dataDir: string, private readonly sandbox: SpiderSandbox, private readonly log: (msg: string) => void = (m) => console.log(`[spiderplane-slave] ${m}`)) {
    this.root = join(dataDir, 'forkservers');
  }

  /** Where a job's keeper finds a ready forkserver for this spawn, or null (spawn it plainly). */
  targetFor(spec: SpawnSpec): ForkserverTarget | null {
    if (spec.args[0] !== '-m' || spec.args[1] !== 'scrapy' || spec.args[2] !== 'crawl') return null;
    if (!this.servers.has(spec.command)) this.start(spec.command);
    const s = this.servers.get(spec.command);
    // One still starting is worth waiting for (the keeper does, while it lives): a spawn would pay
    // the same import. A failed one is not: null until its retry.
    return s && s.proc.pid !== undefined ? { sock: s.sock, python: s.python, pid: s.proc.pid } : null;
  }

  /** Starts the forkserver of an interpreter ahead of its first job. */
  warm(python: string): void {
    if (!this.servers.has(python)) this.start(python);
  }

  /** How many are ready (for tests and the log). */
  readyCount(): number {
    return [...this.servers.values()].filter((s) => s.ready).length;
  }

  private start(python: string): void {
    if (this.stopped) return;
    const failed = this.failedAt.get(python);
    if (failed !== undefined && Date.now() - failed < RETRY_AFTER_FAILURE_MS) return;
    const prefix = createHash('sha256').update(python).digest('hex').slice(0, 12);
    // A fresh folder each start: the last one belongs to the spiders' user, so root never writes
    // into it or deletes it by path; it is locked, then removed, in the background (tree_lock.ts).
    const dir = join(this.root, `${prefix}-${randomBytes(4).toString('hex')}`);
    let proc: ChildProcess;
    try {
      mkdirSync(this.root, { recursive: true, mode: 0o711 });
      setMode(this.root, 0o711);
      for (const name of readdirSync(this.root)) if (name.startsWith(`${prefix}-`)) this.removeOld(join(this.root, name));
      mkdirSync(dir, { mode: 0o700 });
      // The script is copied next to its socket: readable by the spiders' user wherever the daemon is installed.
      writeFileSync(join(dir, 'spiderplane-forkserver.py'), SCRIPT, { mode: 0o644 });
      this.sandbox.ownFolder(dir);
      proc = spawn(python, [join(dir, 'spiderplane-forkserver.py'), 'spiderplane-forkserver', join(dir, 's')], {
        // Its own process group, as the keepers have: a signal to the daemon's group (kill -9 of
        // it, a supervisor stopping it as a group) leaves it to reap its running children and
        // report their exit status; the daemon's pipe closing tells it to stop.
        cwd: dir, env: this.sandbox.baseEnv(dir), stdio: ['pipe', 'pipe', 'inherit'], detached: true, ...this.sandbox.spawnIdentity(),
      });
    } catch (e) {
      this.failedAt.set(python, Date.now());
      this.log(`forkserver for ${python} could not start: ${(e as Error).message}; spiders are spawned directly`);
      return;
    }
    const server: Server = { python, sock: join(dir, 's'), proc, ready: false };
    this.servers.set(python, server);
    proc.once('error', (e) => this.log(`forkserver for ${python} could not start: ${e.message}`));
    proc.stdin!.on('error', () => undefined);
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (d: string) => {
      if (!server.ready && d.includes('ready')) {
        server.ready = true;
        this.log(`forkserver ready for ${python} (pid ${proc.pid}, ${/\((\d+) modules/.exec(d)?.[1] ?? '?'} modules preloaded)`);
      }
    });
    proc.once('exit', (code, signal) => {
      if (this.servers.get(python) === server) this.servers.delete(python);
      if (this.stopped) return;
      if (!server.ready) this.failedAt.set(python, Date.now());
      this.log(`forkserver for ${python} ended (${signal ?? `exit code ${code}`}); ${server.ready ? 'started again at the next job' : 'spiders are spawned directly'}`);
    });
    // It must not keep the daemon alive; its stdin closing (the daemon gone) tells it to stop accepting.
    proc.unref();
    (proc.stdout as unknown as { unref?: () => void }).unref?.();
    (proc.stdin as unknown as { unref?: () => void }).unref?.();
  }

  /**
   * Stops accepting jobs: each forkserver exits once its running children ended (their keepers
   * still hear their exit status).
   */
  private removeOld(dir: string): void {
    const done = this.sandbox.who ? removeSpiderTree(dir, process.getuid?.() ?? 0, process.getgid?.() ?? 0) : Promise.resolve(rmSync(dir, { recursive: true, force: true }));
    done.catch((e: Error) => this.log(`could not remove the old forkserver folder ${dir}: ${e.message}`));
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.servers.values()) s.proc.stdin?.end();
    this.servers.clear();
  }
}

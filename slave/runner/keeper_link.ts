import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { EventEmitter } from 'node:events';
import type { SpawnSpec } from './spider_command.ts';

// The daemon's side of a spider's keeper (common/keeper.mjs): the daemon starts each spider under
// a keeper and holds its lease through pipes; a restarted daemon takes an orphaned keeper over
// through its unix socket in the keepers folder. Events: 'pid' (number), 'exit' (KeeperExit),
// 'failed' (string: the spider could not be started), 'close' (the link is gone).

export const KEEPER_PATH = fileURLToPath(new URL('../../common/keeper.mjs', import.meta.url));

export interface KeeperExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** epoch seconds */
  at: number;
  /** set when the keeper itself stopped the spider (its lease ran out with no daemon) */
  note: string | null;
}

export interface KeeperFiles { sock: string; exitFile: string }

/** Where a job's keeper listens and leaves its exit status: short paths (unix sockets allow ~107 bytes). */
export function keeperFiles(keepersDir: string, uid: number): KeeperFiles {
  return { sock: join(keepersDir, `${uid}.sock`), exitFile: join(keepersDir, `${uid}.exit`) };
}

/** The exit status a keeper left behind, or null. */
export function readKeeperExit(files: KeeperFiles): KeeperExit | null {
  try {
    const o = JSON.parse(readFileSync(files.exitFile, 'utf8')) as Partial<KeeperExit>;
    return { code: typeof o.code === 'number' ? o.code : null, signal: (typeof o.signal === 'string' ? o.signal : null) as NodeJS.Signals | null, at: Number(o.at) || 0, note: typeof o.note === 'string' ? o.note : null };
  } catch {
    return null;
  }
}

export function clearKeeperFiles(files: KeeperFiles): void {
  rmSync(files.exitFile, { force: true });
  rmSync(`${files.exitFile}.tmp`, { force: true });
}

export interface KeeperLaunch {
  spec: SpawnSpec;
  identity: { uid?: number; gid?: number };
  /** the job's log file (it exists): the keeper opens it and gives it to the spider as stdout and stderr */
  logPath: string;
  files: KeeperFiles;
  graceMs: number;
  nice: number | null;
  lease: LeaseTerms;
  /** the environment's forkserver to start the spider from (null: spawn it) */
  forkserver?: { sock: string; python: string; pid: number } | null;
}

/** What a keeper is told about the lease: the window (null = none), keep_running, and how long ago the last master contact was. */
export interface LeaseTerms { leaseMs: number | null; keep: boolean; contactAgoMs: number | null }

export class KeeperLink extends EventEmitter {
  private closed = false;
  keeperPid: number | null = null;

  private constructor(private readonly out: Writable, private readonly input: Readable, private readonly child: ChildProcess | null) {
    super();
    let buf = '';
    input.setEncoding('utf8');
    input.on('data', (d: string) => {
      buf += d;
      if (buf.length > 1 << 16) buf = '';
      for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let msg: { pid?: unknown; exit?: KeeperExit; error?: unknown };
        try { msg = JSON.parse(line) as typeof msg; } catch { continue; }
        if (typeof msg.pid === 'number') this.emit('pid', msg.pid);
        if (msg.exit) this.emit('exit', msg.exit);
        if (typeof msg.error === 'string') this.emit('failed', msg.error);
      }
    });
    const gone = () => {
      if (this.closed) return;
      this.closed = true;
      this.emit('close');
    };
    input.on('error', () => undefined);
    out.on('error', () => undefined);
    input.on('close', gone);
    input.on('end', gone);
  }

  /**
   * Starts the spider under a keeper: the spare one when there is one (already started), else a new
   * one. The keeper runs as the daemon; the spider as its spawn identity.
   */
  static launch(l: KeeperLaunch, spares?: SpareKeepers | null): KeeperLink {
    const child = spares?.take() ?? startKeeper();
    const link = new KeeperLink(child.stdin!, child.stdio[3] as Readable, child);
    link.keeperPid = child.pid ?? null;
    child.on('error', (e) => link.emit('failed', `could not start the keeper: ${e.message}`));
    link.send({
      command: l.spec.command, args: l.spec.args, cwd: l.spec.cwd, env: l.spec.env, ...l.identity, logPath: l.logPath,
      sock: l.files.sock, exitFile: l.files.exitFile, graceMs: l.graceMs, nice: l.nice,
      leaseMs: l.lease.leaseMs, keep: l.lease.keep, contactAgoMs: l.lease.contactAgoMs,
      ...(l.forkserver ? { forkserver: l.forkserver } : {}),
    });
    return link;
  }

  /** Re-adopts an orphaned keeper through its socket; resolves null when no keeper answers there. */
  static adopt(files: KeeperFiles, timeoutMs = 2000): Promise<KeeperLink | null> {
    return new Promise((resolve) => {
      const sock = connect(files.sock);
      const t = setTimeout(() => { sock.destroy(); resolve(null); }, timeoutMs);
      sock.once('error', () => { clearTimeout(t); resolve(null); });
      sock.once('connect', () => {
        clearTimeout(t);
        sock.unref();
        resolve(new KeeperLink(sock, sock, null));
      });
    });
  }

  send(msg: Record<string, unknown>): void {
    if (this.closed) return;
    try { this.out.write(JSON.stringify(msg) + '\n'); } catch { /* keeper gone: 'close' follows */ }
  }

  /** Tells the keeper the lease terms (sent at launch, at adoption, and whenever the window changes). */
  terms(t: LeaseTerms): void {
    this.send({ lease: t.leaseMs, keep: t.keep, ...(t.contactAgoMs !== null ? { contactAgoMs: t.contactAgoMs } : {}) });
  }

  /** Keeps the daemon alive until this link closes (a shutdown that waits for its spiders to end). */
  hold(): void {
    for (const h of [this.child, this.out, this.input] as Array<{ ref?: () => void } | null>) h?.ref?.();
  }

  /** Lets go of the keeper without stopping it (the daemon is leaving; a later one re-adopts it). */
  release(): void {
    this.closed = true;
    this.out.destroy();
    this.input.destroy();
  }

  get isClosed(): boolean { return this.closed; }
  get childProcess(): ChildProcess | null { return this.child; }
}

/**
 * A keeper process waiting for its spec (common/keeper.mjs reads it from stdin): it writes nothing
 * anywhere until then, and exits if the daemon goes away first. Unref'd: the daemon may exit
 * (--on-shutdown leave) without waiting for its keepers.
 */
function startKeeper(): ChildProcess {
  const child = spawn(process.execPath, [KEEPER_PATH], {
    // The keeper needs nothing from the daemon's environment; the spider gets its own (spec.env).
    env: {}, cwd: '/', stdio: ['pipe', 'ignore', 'ignore', 'pipe'], detached: true,
  });
  child.on('error', () => undefined); // reported by the link that takes it (a spawn that failed has no pid)
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  (child.stdio[3] as unknown as { unref?: () => void }).unref?.();
  return child;
}

/** How long after a spare was taken the next one is started: not while the job it serves starts. */
const REFILL_DELAY_MS = 200;

/**
 * One keeper started ahead of the next job, so that schedule -> spider does not wait for Node to
 * start (~50 ms): the same keeper.mjs, so every guarantee of a keeper holds. A job takes it and the
 * next is started a moment later; jobs launched meanwhile start a keeper of their own, as before.
 */
export class SpareKeepers {
  private spare: ChildProcess | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  /** Starts the first spare. */
  start(): void {
    if (!this.stopped && !this.spare) this.spare = startKeeper();
  }

  /** The spare keeper, if one is alive and waiting (the next is started shortly). */
  take(): ChildProcess | null {
    const s = this.spare;
    this.spare = null;
    this.refill();
    return s && s.pid !== undefined && s.exitCode === null && s.signalCode === null && s.stdin?.writable ? s : null;
  }

  private refill(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => { this.timer = null; this.start(); }, REFILL_DELAY_MS);
    this.timer.unref();
  }

  /** The waiting spare exits (its stdin closes); none is started again. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.spare?.stdin?.end();
    this.spare = null;
  }
}

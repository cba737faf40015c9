import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { createReadStream } from 'node:fs';
import { stat, unlink } from 'node:fs/promises';
import { cpus } from 'node:os';
import { EventEmitter } from 'node:events';
import type { JobStore, JobRow } from '../jobs/job_store.ts';
import type { PackageStore } from '../packages/package_store.ts';
import type { LogMonitor } from '../logs/log_monitor.ts';
import type { JobOutcome } from '../../common/types.ts';
import { nowSeconds } from '../../common/scrapyd_time.ts';
import { sanitizeVersion } from '../../common/names.ts';
import { genericCommand, scrapyCommand, type SpawnSpec } from './spider_command.ts';
import { isSameProcess, processStartTime, signalGroup } from './process_probe.ts';
import type { JobFiles } from '../jobs/job_files.ts';

export interface LauncherOptions {
  maxProc: number;
  maxProcPerCpu: number;
  cancelGraceSeconds: number;
  jobsToKeep: number;
  orphans: 'adopt' | 'kill';
}

interface Live {
  uid: number;
  pid: number;
  adopted: boolean;
  cancelled: boolean;
  ladder: NodeJS.Timeout | null;
  poll: NodeJS.Timeout | null;
  exited: Promise<void>;
}

const LADDER: NodeJS.Signals[] = ['SIGTERM', 'SIGKILL'];

/**
 * Starts pending jobs the moment a slot is free (on schedule and on every exit — no polling),
 * supervises their processes, and records how each one ended.
 */
export class Launcher extends EventEmitter {
  private readonly live = new Map<number, Live>();
  /** Records still being completed after their process ended (awaited on shutdown). */
  private readonly completing = new Set<Promise<void>>();
  private stopping = false;

  constructor(
    private readonly jobs: JobStore,
    private readonly packages: PackageStore,
    private readonly files: JobFiles,
    private readonly logs: LogMonitor,
    private readonly python: () => string | null,
    private readonly opts: LauncherOptions,
  ) {
    super();
  }

  get maxProc(): number {
    return this.opts.maxProc > 0 ? this.opts.maxProc : cpus().length * this.opts.maxProcPerCpu;
  }

  get runningCount(): number { return this.live.size; }
  pidOf(uid: number): number | undefined { return this.live.get(uid)?.pid; }

  /** Fills free slots with the highest-priority pending jobs (FIFO within a priority). */
  kick(): void {
    while (!this.stopping && this.live.size < this.maxProc) {
      const row = this.jobs.nextPending();
      if (!row) return;
      this.launch(row);
    }
  }

  private launch(row: JobRow): void {
    const pkg = this.packages.resolve(row.project, row.version === null ? null : sanitizeVersion(row.version));
    if (!pkg || !pkg.spiders.includes(row.spider)) {
      const why = !pkg ? `project '${row.project}' has no version ${row.version ?? ''} any more` : `spider '${row.spider}' is not in version ${pkg.version}`;
      this.jobs.failPending(row.uid, `not started: ${why}`);
      this.emit('finished', row.uid);
      return;
    }
    const paths = this.files.paths(row.project, row.spider, row.id);
    let spec: SpawnSpec;
    if (pkg.kind === 'scrapy-egg') {
      const python = this.python();
      if (!python) {
        this.jobs.failPending(row.uid, 'not started: no Python interpreter that can import scrapy on this slave');
        this.emit('finished', row.uid);
        return;
      }
      mkdirSync(this.packages.workDir(row.project), { recursive: true });
      spec = scrapyCommand(this.launchInfo(row, paths), pkg, python, this.packages.workDir(row.project));
    } else {
      spec = genericCommand(this.launchInfo(row, paths), pkg);
    }
    mkdirSync(paths.logDir, { recursive: true });
    mkdirSync(paths.itemsDir, { recursive: true });
    // The child writes straight into the log file: no pipe to drain, no line lost if it crashes,
    // and it keeps logging even if this daemon dies.
    const logFd = openSync(paths.logPath, 'a');
    let child;
    try {
      child = spawn(spec.command, spec.args, { cwd: spec.cwd, env: spec.env, stdio: ['ignore', logFd, logFd], detached: true });
    } finally {
      closeSync(logFd);
    }
    const startTime = nowSeconds();
    if (child.pid === undefined) {
      // spawn failed (ENOENT, EACCES…) and the error event that says why comes on a later tick:
      // take the job out of the queue now, or kick() would pick it again and again.
      this.jobs.markRunning(row.uid, { start_time: startTime, pid: 0, proc_start: null, run_version: pkg.version });
      child.once('error', (err) => {
        this.recordEnd(row.uid, { code: null, signal: null, note: `could not start '${spec.command}': ${err.message}`, forceOutcome: 'failed' });
      });
      return;
    }
    const pid = child.pid;
    this.jobs.markRunning(row.uid, { start_time: startTime, pid, proc_start: processStartTime(pid), run_version: pkg.version });
    this.logs.watch(row.uid, { project: row.project, spider: row.spider, job: row.id, logPath: paths.logPath });
    const entry: Live = { uid: row.uid, pid, adopted: false, cancelled: false, ladder: null, poll: null, exited: Promise.resolve() };
    entry.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.recordEnd(row.uid, { code, signal });
        resolve();
      });
    });
    this.live.set(row.uid, entry);
    this.emit('started', row.uid);
  }

  private launchInfo(row: JobRow, paths: { logPath: string; itemsPath: string }) {
    return {
      uid: row.uid, id: row.id, project: row.project, spider: row.spider, requestedVersion: row.version,
      args: JSON.parse(row.args) as Record<string, string>, settings: JSON.parse(row.settings) as Record<string, string>,
      itemsPath: paths.itemsPath, logPath: paths.logPath,
    };
  }

  /**
   * Records the end at once (the slot is free and listjobs shows it finished), then fills in what
   * takes I/O — items count, final log stats, errors — and applies the retention limits.
   */
  private recordEnd(uid: number, r: { code: number | null; signal: NodeJS.Signals | null; note?: string; forceOutcome?: JobOutcome }): void {
    const entry = this.live.get(uid);
    this.live.delete(uid);
    if (entry?.ladder) clearTimeout(entry.ladder);
    if (entry?.poll) clearInterval(entry.poll);
    const row = this.jobs.get(uid);
    if (!row) return;
    const outcome: JobOutcome = r.forceOutcome ?? (entry?.cancelled ? 'cancelled' : entry?.adopted ? 'unknown' : r.code === 0 ? 'succeeded' : 'failed');
    const end = nowSeconds();
    const paths = this.files.paths(row.project, row.spider, row.id);
    this.jobs.markFinished(uid, {
      end_time: end, exit_code: r.code, signal: r.signal, outcome, items_count: null, error_count: null,
      items_exists: false, log_exists: true, stats: null, note: r.note ?? row.note ?? (entry?.adopted ? 're-adopted after a slave restart: exit status unknown' : null),
    });
    this.kick();
    const completing: Promise<void> = this.completeRecord(uid, paths)
      .catch((e) => console.error(`[spiderplane-slave] completing the record of job ${row.id} failed:`, e))
      .finally(() => {
        this.completing.delete(completing);
        this.emit('finished', uid);
      });
    this.completing.add(completing);
  }

  private async completeRecord(uid: number, paths: { logPath: string; itemsPath: string }): Promise<void> {
    const ended = this.jobs.get(uid);
    if (ended && !this.logs.isWatching(uid)) {
      this.logs.watch(uid, { project: ended.project, spider: ended.spider, job: ended.id, logPath: paths.logPath });
    }
    const summary = await this.logs.finish(uid);
    const items = await countLines(paths.itemsPath);
    const row = this.jobs.get(uid);
    if (!row) return;
    this.jobs.markFinished(uid, {
      end_time: row.end_time ?? nowSeconds(), exit_code: row.exit_code, signal: row.signal, outcome: row.outcome ?? 'failed',
      items_count: items, error_count: summary?.errorCount ?? 0, items_exists: items !== null,
      log_exists: await exists(paths.logPath), stats: summary ? JSON.stringify(summary.stats) : null, note: row.note,
    });
    if (summary) this.emit('errors', uid, summary.errors);
    await this.rotateFiles(row.project, row.spider);
  }

  /** Keeps the log and items files of the newest jobs_to_keep finished jobs of a spider. */
  private async rotateFiles(project: string, spider: string): Promise<void> {
    const withFiles = this.jobs.jobsWithFiles(project, spider);
    const keptIds = new Set(withFiles.slice(0, this.opts.jobsToKeep).map((r) => r.id));
    for (const old of withFiles.slice(this.opts.jobsToKeep)) {
      this.jobs.clearFiles(old.uid);
      if (keptIds.has(old.id)) continue; // a newer run reused this job id and owns the file now
      const p = this.files.paths(project, spider, old.id);
      await unlink(p.logPath).catch(() => undefined);
      await unlink(p.itemsPath).catch(() => undefined);
    }
  }

  /**
   * Scrapyd's cancel: signal the running process group. Each further cancel — or the grace period
   * passing — escalates to TERM, then KILL, so a spider that ignores signals still stops.
   */
  cancelRunning(row: JobRow, signal: NodeJS.Signals): boolean {
    const entry = this.live.get(row.uid);
    if (!entry) return false;
    entry.cancelled = true;
    const n = this.jobs.countCancel(row.uid);
    const sig = n <= 1 ? signal : LADDER[Math.min(n - 2, LADDER.length - 1)]!;
    signalGroup(entry.pid, sig);
    this.armLadder(entry, LADDER.indexOf(sig) + 1);
    return true;
  }

  private armLadder(entry: Live, step: number): void {
    if (entry.ladder) clearTimeout(entry.ladder);
    if (step >= LADDER.length) return;
    entry.ladder = setTimeout(() => {
      if (!this.live.has(entry.uid)) return;
      signalGroup(entry.pid, LADDER[step]!);
      this.armLadder(entry, step + 1);
    }, this.opts.cancelGraceSeconds * 1000);
    entry.ladder.unref();
  }

  /**
   * After a restart: jobs the database says are running either still have their process (an
   * orphan of the previous daemon: adopted, or stopped when configured so) or are recorded as lost.
   */
  recoverAfterRestart(): { adopted: number; lost: number; killed: number } {
    const result = { adopted: 0, lost: 0, killed: 0 };
    for (const row of this.jobs.running()) {
      if (row.pid && isSameProcess(row.pid, row.proc_start)) {
        const entry: Live = { uid: row.uid, pid: row.pid, adopted: true, cancelled: false, ladder: null, poll: null, exited: Promise.resolve() };
        entry.exited = new Promise((resolve) => {
          entry.poll = setInterval(() => {
            if (isSameProcess(entry.pid, row.proc_start)) return;
            this.recordEnd(row.uid, { code: null, signal: null });
            resolve();
          }, 500);
        });
        this.live.set(row.uid, entry);
        this.logs.watch(row.uid, { project: row.project, spider: row.spider, job: row.id, logPath: this.files.paths(row.project, row.spider, row.id).logPath });
        if (this.opts.orphans === 'kill') {
          this.jobs.setNote(row.uid, 'orphaned by a slave crash and stopped at restart (orphans = kill)');
          this.cancelRunning(row, 'SIGTERM');
          result.killed++;
        } else {
          result.adopted++;
        }
      } else {
        this.live.set(row.uid, { uid: row.uid, pid: 0, adopted: false, cancelled: false, ladder: null, poll: null, exited: Promise.resolve() });
        this.recordEnd(row.uid, { code: null, signal: null, forceOutcome: 'lost', note: 'the slave stopped while this job ran and its process was gone at restart' });
        result.lost++;
      }
    }
    return result;
  }

  /** 'stop': cancel every running job and wait for it to end; 'leave': let them run on unsupervised until the next start adopts them. */
  async shutdown(mode: 'stop' | 'leave'): Promise<void> {
    this.stopping = true;
    const entries = [...this.live.values()];
    if (mode === 'leave') {
      for (const e of entries) {
        if (e.ladder) clearTimeout(e.ladder);
        if (e.poll) clearInterval(e.poll);
        this.logs.forget(e.uid);
      }
      this.live.clear();
      return;
    }
    for (const e of entries) {
      const row = this.jobs.get(e.uid);
      if (row) this.cancelRunning(row, 'SIGINT');
    }
    await Promise.all(entries.map((e) => e.exited));
    await Promise.allSettled([...this.completing]);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Counts JSON lines without holding the file in memory; null when there is no file. */
async function countLines(path: string): Promise<number | null> {
  if (!(await exists(path))) return null;
  let lines = 0;
  let last = 0x0a;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) lines++;
    if (chunk.length) last = chunk[chunk.length - 1]!;
  }
  return last === 0x0a ? lines : lines + 1;
}

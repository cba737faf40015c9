import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, createReadStream, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { stat, unlink } from 'node:fs/promises';
import { cpus } from 'node:os';
import { EventEmitter } from 'node:events';
import type { JobStore, JobRow } from '../jobs/job_store.ts';
import type { PackageStore } from '../packages/package_store.ts';
import { kindOf } from '../packages/kinds/index.ts';
import { KindError } from '../packages/kinds/kind.ts';
import type { LogMonitor } from '../logs/log_monitor.ts';
import type { JobOutcome } from '../../common/types.ts';
import { nowSeconds } from '../../common/scrapyd_time.ts';
import { sanitizeVersion } from '../../common/names.ts';
import { checkSettingPaths } from '../../common/scrapy_setting_paths.ts';
import type { SpawnSpec } from './spider_command.ts';
import { isSameProcess, processStartTime, signalGroup } from './process_probe.ts';
import type { JobFiles } from '../jobs/job_files.ts';
import { judgeOutcome } from '../jobs/outcome.ts';
import type { SpiderSandbox } from './sandbox.ts';
import { openSpiderFile } from '../jobs/spider_file.ts';
import { setMode } from '../../common/private_files.ts';
import { effectiveLimits, limitColumns, type JobLimitStore, type RequestedLimits } from '../jobs/job_limits.ts';
import type { LimitHit, RunLimits } from '../../common/types.ts';
import { describeHit } from './limits.ts';
import { LimitWatcher } from './limit_watcher.ts';
import { applyNice } from './nice.ts';

export interface LauncherOptions {
  maxProc: number;
  maxProcPerCpu: number;
  cancelGraceSeconds: number;
  jobsToKeep: number;
  orphans: 'adopt' | 'kill';
  /** Limits on a run: where they are stored, and the slave's defaults (--max-runtime, --max-memory, --nice). */
  limits?: { store: JobLimitStore; defaults: RequestedLimits };
}

interface Live {
  uid: number;
  pid: number;
  adopted: boolean;
  cancelled: boolean;
  ladder: NodeJS.Timeout | null;
  poll: NodeJS.Timeout | null;
  exited: Promise<void>;
  /** limits in force (null fields = none) and when the job started (epoch seconds) */
  limits?: RunLimits;
  startTime?: number;
  /** set when a limit stopped it: the outcome becomes 'timeout' or 'memory' */
  limitHit?: LimitHit;
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
  private readonly watcher = new LimitWatcher(
    () => [...this.live.values()].filter((e) => e.limits && e.startTime !== undefined).map((e) => ({ uid: e.uid, pid: e.pid, startTime: e.startTime!, limits: e.limits! })),
    (uid, hit) => this.stopForLimit(uid, hit),
  );

  constructor(
    private readonly jobs: JobStore,
    private readonly packages: PackageStore,
    private readonly files: JobFiles,
    private readonly logs: LogMonitor,
    private readonly python: () => string | null,
    private readonly sandbox: SpiderSandbox,
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
    const workDir = this.packages.workDir(row.project);
    let spec: SpawnSpec;
    try {
      // The spider writes its items and work files as the run-as user; its log is opened here
      // and handed over as stdout/stderr, so the logs folder stays the daemon's.
      mkdirSync(workDir, { recursive: true });
      this.sandbox.ownFolder(workDir);
      mkdirSync(paths.logDir, { recursive: true });
      mkdirSync(paths.itemsDir, { recursive: true });
      setMode(dirname(paths.itemsDir), 0o711); // items/PROJECT: passable whatever the daemon's umask
      this.sandbox.ownFolder(paths.itemsDir);
      this.sandbox.ownFile(paths.itemsPath);
    } catch (e) {
      this.jobs.failPending(row.uid, `not started: could not prepare the job's folders: ${(e as Error).message}`);
      this.emit('finished', row.uid);
      return;
    }
    const info = this.launchInfo(row, paths, workDir);
    try {
      // schedule.json refuses these already; a job queued before that check existed is caught here.
      checkSettingPaths(info.settings, workDir);
    } catch (e) {
      this.jobs.failPending(row.uid, `not started: ${(e as Error).message}`);
      this.emit('finished', row.uid);
      return;
    }
    const baseEnv = this.sandbox.baseEnv(workDir);
    try {
      spec = kindOf(pkg.kind).command(info, pkg, { python: this.python(), baseEnv });
    } catch (e) {
      if (!(e instanceof KindError)) throw e;
      this.jobs.failPending(row.uid, `not started: ${e.message}`);
      this.emit('finished', row.uid);
      return;
    }
    this.packages.noteUsed(pkg); // envs.json's last_used
    // The child writes straight into the log file: no pipe to drain, no line lost if it crashes,
    // and it keeps logging even if this daemon dies.
    const logFd = openSync(paths.logPath, 'a');
    let child;
    try {
      child = spawn(spec.command, spec.args, { cwd: spec.cwd, env: spec.env, stdio: ['ignore', logFd, logFd], detached: true, ...this.sandbox.spawnIdentity() });
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
    const limits = this.limitsOf(row);
    // Right after spawn, before the spider had time to start children: they inherit it.
    if (limits.nice !== null) applyNice(pid, limits.nice);
    this.jobs.markRunning(row.uid, { start_time: startTime, pid, proc_start: processStartTime(pid), run_version: pkg.version });
    this.logs.watch(row.uid, { project: row.project, spider: row.spider, job: row.id, logPath: paths.logPath });
    const entry: Live = { uid: row.uid, pid, adopted: false, cancelled: false, ladder: null, poll: null, exited: Promise.resolve(), limits, startTime };
    entry.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.recordEnd(row.uid, { code, signal });
        resolve();
      });
    });
    this.live.set(row.uid, entry);
    this.watcher.wake();
    this.emit('started', row.uid);
  }

  private launchInfo(row: JobRow, paths: { logPath: string; itemsPath: string }, workDir: string) {
    return {
      uid: row.uid, id: row.id, project: row.project, spider: row.spider, requestedVersion: row.version,
      args: JSON.parse(row.args) as Record<string, string>, settings: JSON.parse(row.settings) as Record<string, string>,
      itemsPath: paths.itemsPath, logPath: paths.logPath, workDir,
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
    // A limit that stopped it says why, whatever the exit status (the spider may exit 0 on TERM).
    const hit = r.forceOutcome ? undefined : entry?.limitHit;
    const outcome: JobOutcome = r.forceOutcome ?? (hit ? hit.kind : entry?.cancelled ? 'cancelled' : entry?.adopted ? 'unknown' : r.code === 0 ? 'succeeded' : 'failed');
    const end = nowSeconds();
    const paths = this.files.paths(row.project, row.spider, row.id);
    if (hit) this.opts.limits?.store.recordHit(uid, hit);
    this.jobs.markFinished(uid, {
      end_time: end, exit_code: r.code, signal: r.signal, outcome, items_count: null, error_count: null,
      items_exists: false, log_exists: true, stats: null, note: r.note ?? (hit ? describeHit(hit) : null) ?? row.note ?? (entry?.adopted ? 're-adopted after a slave restart: exit status unknown' : null),
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
    const items = await countLines(paths.itemsPath, this.files.itemsDir);
    const row = this.jobs.get(uid);
    if (!row) return;
    const stats = summary?.stats as { finish_reason?: unknown; crawler_stats?: Record<string, unknown> } | undefined;
    const scrapyErrors = stats?.crawler_stats?.['log_count/ERROR'];
    const judged = judgeOutcome(row.outcome ?? 'failed', {
      errorCount: summary?.errorCount ?? 0,
      scrapyErrorCount: typeof scrapyErrors === 'number' ? scrapyErrors : null,
      finishReason: typeof stats?.finish_reason === 'string' ? stats.finish_reason : null,
      items,
      previousItems: row.outcome === 'succeeded' ? this.jobs.previousItems(row) : null,
    });
    this.jobs.markFinished(uid, {
      end_time: row.end_time ?? nowSeconds(), exit_code: row.exit_code, signal: row.signal, outcome: judged.outcome,
      items_count: items, error_count: summary?.errorCount ?? 0, items_exists: items !== null,
      log_exists: await exists(paths.logPath), stats: summary ? JSON.stringify(summary.stats) : null,
      note: judged.why ? (row.note ? `${row.note}; ${judged.why}` : judged.why) : row.note,
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

  /**
   * A limit was broken: TERM to the process group, then KILL after the cancel grace (the cancel
   * ladder from its TERM step), and a line in the job's log saying why.
   */
  private stopForLimit(uid: number, hit: LimitHit): void {
    const entry = this.live.get(uid);
    if (!entry || entry.limitHit) return;
    entry.limitHit = hit;
    const row = this.jobs.get(uid);
    if (row) {
      const line = `${new Date().toISOString().replace('T', ' ').slice(0, 19)} [spiderplane] ERROR: ${describeHit(hit)}; sending SIGTERM, SIGKILL after ${this.opts.cancelGraceSeconds} s\n`;
      try { appendFileSync(this.files.paths(row.project, row.spider, row.id).logPath, line); } catch { /* the log may be gone: the note still says why */ }
    }
    signalGroup(entry.pid, 'SIGTERM');
    this.armLadder(entry, LADDER.indexOf('SIGTERM') + 1);
  }

  /** Records what a newly queued job asked for (null = the slave's default). */
  setRequestedLimits(uid: number, r: RequestedLimits): void {
    this.opts.limits?.store.set(uid, r);
  }

  /** The limits a job runs under: its own, else the slave's defaults. */
  limitsOf(row: JobRow): RunLimits {
    const none: RequestedLimits = { maxRuntime: null, maxMemory: null, nice: null };
    return effectiveLimits(limitColumns(row).requested, this.opts.limits?.defaults ?? none);
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
        const entry: Live = {
          uid: row.uid, pid: row.pid, adopted: true, cancelled: false, ladder: null, poll: null, exited: Promise.resolve(),
          limits: this.limitsOf(row), startTime: row.start_time ?? nowSeconds(),
        };
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
        this.watcher.wake();
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
    this.watcher.stop();
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

/**
 * Counts JSON lines without holding the file in memory; null when there is no file. The file is the
 * spider's: read only if it is a regular file inside the items tree (never through a symlink, FIFO
 * or device it may have put in its place).
 */
async function countLines(path: string, root: string): Promise<number | null> {
  const fh = await openSpiderFile(path, root);
  if (!fh) return null;
  let lines = 0;
  let last = 0x0a;
  for await (const chunk of fh.createReadStream() as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) lines++;
    if (chunk.length) last = chunk[chunk.length - 1]!;
  }
  return last === 0x0a ? lines : lines + 1;
}

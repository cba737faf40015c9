import { appendFileSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { stat, unlink } from 'node:fs/promises';
import { cpus } from 'node:os';
import { EventEmitter } from 'node:events';
import type { JobStore, JobRow } from '../jobs/job_store.ts';
import type { PackageStore, StoredVersion } from '../packages/package_store.ts';
import { pythonFor } from './env_activation.ts';
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
import { clearKeeperFiles, KeeperLink, keeperFiles, readKeeperExit, type KeeperExit, type LeaseTerms, type SpareKeepers } from './keeper_link.ts';
import type { JobLeaseStore } from '../jobs/job_lease.ts';
import type { MasterLease } from '../cluster/master_lease.ts';
import { writeToldWindow } from './keepers_dir.ts';
import type { Forkservers } from './forkservers.ts';

export interface LauncherOptions {
  maxProc: number;
  maxProcPerCpu: number;
  cancelGraceSeconds: number;
  jobsToKeep: number;
  orphans: 'adopt' | 'kill';
  /** Limits on a run: where they are stored, and the slave's defaults (--max-runtime, --max-memory, --nice). */
  limits?: { store: JobLimitStore; defaults: RequestedLimits };
  /** The master lease (slave/cluster/master_lease.ts), per-job keep_running, and where keepers keep their sockets. */
  lease: { clock: MasterLease; store: JobLeaseStore; keepersDir: string };
  /** The forkservers (default; null with --no-forkserver): Scrapy jobs are forked from their environment's warm forkserver. */
  forkservers?: Forkservers | null;
  /** A keeper started ahead of the next job (null: each job starts its own). */
  spareKeepers?: SpareKeepers | null;
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
  /** the keeper the spider runs under (null: an orphan found without one, supervised by polling) */
  link?: KeeperLink | null;
  /** signals asked for before the keeper reported the spider's pid */
  pendingSignals?: NodeJS.Signals[];
  /** why the master lease stopped it (outcome 'lost') */
  leaseStop?: string;
  /** what the keeper reported when the spider ended */
  report?: KeeperExit;
  startError?: string;
  resolveExit?: () => void;
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
    () => [...this.live.values()].filter((e) => e.pid > 0 && e.limits && e.startTime !== undefined).map((e) => ({ uid: e.uid, pid: e.pid, startTime: e.startTime!, limits: e.limits! })),
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

  /** A Scrapy version was stored: its environment's forkserver starts now, ahead of its first job. */
  warmFor(pkg: StoredVersion): void {
    const python = this.python();
    if (this.opts.forkservers && pkg.kind === 'scrapy-egg' && python) this.opts.forkservers.warm(pythonFor(pkg.envs, python));
  }
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
    if (this.opts.lease.clock.expired() && !this.opts.lease.store.keepsRunning(row.uid)) {
      this.markLeaseLost(row, this.leaseNote());
      return;
    }
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
    // The spider runs under a keeper (common/keeper.mjs) that holds the master lease for it if this
    // daemon dies. Both write straight into the log file: no pipe to drain, no line lost if the
    // spider crashes, and it keeps logging while no daemon watches it.
    const limits = this.limitsOf(row);
    const files = keeperFiles(this.opts.lease.keepersDir, row.uid);
    clearKeeperFiles(files);
    closeSync(openSync(paths.logPath, 'a')); // the daemon's file; the keeper opens it to write
    const link = KeeperLink.launch({
      spec, identity: this.sandbox.spawnIdentity(), logPath: paths.logPath, files, graceMs: this.opts.cancelGraceSeconds * 1000, nice: limits.nice, lease: this.leaseTerms(row.uid),
      forkserver: this.opts.forkservers?.targetFor(spec) ?? null,
    }, this.opts.spareKeepers);
    const startTime = nowSeconds();
    // The spider's pid comes from its keeper a moment later (attach): until then, signals wait.
    this.jobs.markRunning(row.uid, { start_time: startTime, pid: 0, proc_start: null, run_version: pkg.version });
    this.logs.watch(row.uid, { project: row.project, spider: row.spider, job: row.id, logPath: paths.logPath });
    const entry: Live = { uid: row.uid, pid: 0, adopted: false, cancelled: false, ladder: null, poll: null, exited: Promise.resolve(), limits, startTime, pendingSignals: [] };
    entry.exited = new Promise((resolve) => { entry.resolveExit = resolve; });
    this.live.set(row.uid, entry);
    this.attach(entry, link, spec.command);
    this.emit('started', row.uid);
  }

  /**
   * Supervises a spider through its keeper: its pid, its exit status, and the end of the link
   * (the keeper gone), which is when the end is recorded.
   */
  private attach(entry: Live, link: KeeperLink, command = 'the spider'): void {
    entry.link = link;
    link.on('pid', (pid: number) => {
      if (this.live.get(entry.uid) !== entry) return;
      if (entry.pid !== pid) {
        entry.pid = pid;
        this.opts.lease.store.setProcess(entry.uid, pid, processStartTime(pid));
      }
      for (const sig of entry.pendingSignals?.splice(0) ?? []) signalGroup(pid, sig);
      this.watcher.wake();
    });
    link.on('exit', (r: KeeperExit) => { entry.report = r; });
    link.on('failed', (msg: string) => { entry.startError = msg; });
    link.on('close', () => {
      if (this.live.get(entry.uid) !== entry) return;
      if (entry.poll) { clearInterval(entry.poll); entry.poll = null; }
      const report = entry.report ?? readKeeperExit(keeperFiles(this.opts.lease.keepersDir, entry.uid)) ?? undefined;
      if (!report && entry.startError) {
        this.recordEnd(entry.uid, { code: null, signal: null, note: `could not start '${command}': ${entry.startError}`, forceOutcome: 'failed' });
      } else if (!report && entry.pid && isSameProcess(entry.pid, this.jobs.get(entry.uid)?.proc_start ?? null)) {
        // The keeper died (killed) but the spider lives: supervise it by polling, as an orphan.
        entry.link = null;
        entry.adopted = true;
        this.pollOrphan(entry, this.jobs.get(entry.uid)?.proc_start ?? null);
        return;
      } else if (report) {
        const adoptedNote = entry.adopted ? (this.jobs.get(entry.uid)?.note ?? 're-adopted after a slave restart; exit status from its keeper') : undefined;
        entry.adopted = false; // the keeper knows the exit status
        this.recordEnd(entry.uid, { code: report.code, signal: report.signal, endedAt: report.at, ...(report.note ? { note: report.note, forceOutcome: 'lost' as const } : adoptedNote ? { note: adoptedNote } : {}) });
      } else {
        this.recordEnd(entry.uid, { code: null, signal: null, note: 'its keeper ended without reporting an exit status' });
      }
      entry.resolveExit?.();
    });
  }

  private pollOrphan(entry: Live, procStart: string | null): void {
    entry.poll = setInterval(() => {
      if (isSameProcess(entry.pid, procStart)) return;
      this.recordEnd(entry.uid, { code: null, signal: null });
      entry.resolveExit?.();
    }, 500);
  }

  /** What a keeper is told about the lease for a job. */
  private leaseTerms(uid: number): LeaseTerms {
    const c = this.opts.lease.clock;
    return { leaseMs: c.windowMs, keep: this.opts.lease.store.keepsRunning(uid), contactAgoMs: c.sinceContactMs() };
  }

  private lastContactSent = 0;
  /**
   * A master reached this slave (`header`: its X-Spiderplane-Lease). Keepers hear of it (at most
   * once a second) so an orphaned one counts its window from the last contact, as the master does.
   */
  masterContact(header: string | null): void {
    const changed = this.opts.lease.clock.contact(header);
    const told = this.opts.lease.clock.toldWindowMs;
    if (changed && told !== null) writeToldWindow(this.opts.lease.keepersDir, told);
    const now = Date.now();
    if (!changed && now - this.lastContactSent < 1000) return;
    this.lastContactSent = now;
    for (const e of this.live.values()) {
      if (!e.link) continue;
      if (changed) e.link.terms(this.leaseTerms(e.uid));
      else e.link.send({ contact: true });
    }
  }

  private leaseNote(): string {
    return `stopped: no master for ${Math.round((this.opts.lease.clock.sinceContactMs() ?? 0) / 1000)} s (lease expired)`;
  }

  private leaseTimer: NodeJS.Timeout | null = null;
  /** Checks the lease twice a second (cheap: no I/O unless it expired). */
  startLeaseWatch(): void {
    if (this.leaseTimer) return;
    this.leaseTimer = setInterval(() => this.checkLease(), 250);
    this.leaseTimer.unref();
  }

  /**
   * The lease expired: the master has failed over every run it sent with _keep_running=0, so
   * those stop here (TERM, then KILL after the grace) and are recorded lost with the reason;
   * pending ones are dropped as lost. Runs to keep (keep_running, or not the master's) go on.
   */
  checkLease(): void {
    if (!this.opts.lease.clock.expired()) return;
    const note = this.leaseNote();
    for (const e of this.live.values()) {
      if (e.cancelled || e.leaseStop || e.limitHit || this.opts.lease.store.keepsRunning(e.uid)) continue;
      e.leaseStop = note;
      const row = this.jobs.get(e.uid);
      if (row) {
        const line = `${new Date().toISOString().replace('T', ' ').slice(0, 19)} [spiderplane] WARNING: ${note}; the master fails this run over elsewhere; sending SIGTERM, SIGKILL after ${this.opts.cancelGraceSeconds} s\n`;
        try { appendFileSync(this.files.paths(row.project, row.spider, row.id).logPath, line); } catch { /* the note still says why */ }
      }
      this.signal(e, 'SIGTERM');
      this.armLadder(e, LADDER.indexOf('SIGTERM') + 1);
    }
    for (const row of this.jobs.pending()) {
      if (!this.opts.lease.store.keepsRunning(row.uid)) this.markLeaseLost(row, note);
    }
  }

  private markLeaseLost(row: JobRow, note: string): void {
    this.jobs.markFinished(row.uid, {
      end_time: nowSeconds(), exit_code: null, signal: null, outcome: 'lost', items_count: null, error_count: null,
      items_exists: false, log_exists: false, stats: null, note: `${note}: not started`,
    });
    this.emit('finished', row.uid);
  }

  /** Signals a spider's process group, or queues the signal until its keeper reported the pid. */
  private signal(entry: Live, sig: NodeJS.Signals): void {
    if (entry.pid > 0) signalGroup(entry.pid, sig);
    else entry.pendingSignals?.push(sig);
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
  private recordEnd(uid: number, r: { code: number | null; signal: NodeJS.Signals | null; note?: string; forceOutcome?: JobOutcome; endedAt?: number }): void {
    const entry = this.live.get(uid);
    this.live.delete(uid);
    if (entry?.ladder) clearTimeout(entry.ladder);
    if (entry?.poll) clearInterval(entry.poll);
    const row = this.jobs.get(uid);
    if (!row) return;
    // A limit that stopped it says why, whatever the exit status (the spider may exit 0 on TERM).
    const hit = r.forceOutcome ? undefined : entry?.limitHit;
    if (entry?.leaseStop && !r.forceOutcome) r = { ...r, forceOutcome: 'lost', note: entry.leaseStop };
    clearKeeperFiles(keeperFiles(this.opts.lease.keepersDir, uid));
    const outcome: JobOutcome = r.forceOutcome ?? (hit ? hit.kind : entry?.cancelled ? 'cancelled' : entry?.adopted ? 'unknown' : r.code === 0 ? 'succeeded' : 'failed');
    // A keeper's report says when the spider really ended (the daemon may have been down then).
    const end = r.endedAt && r.endedAt > 0 && r.endedAt <= nowSeconds() ? r.endedAt : nowSeconds();
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
    this.signal(entry, sig);
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
    this.signal(entry, 'SIGTERM');
    this.armLadder(entry, LADDER.indexOf('SIGTERM') + 1);
  }

  /** Records whether a newly queued job keeps running when the master lease expires (_keep_running). */
  setKeepRunning(uid: number, keep: boolean): void {
    this.opts.lease.store.setKeepRunning(uid, keep);
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
      this.signal(entry, LADDER[step]!);
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
        entry.exited = new Promise((resolve) => { entry.resolveExit = resolve; });
        this.live.set(row.uid, entry);
        // Polled until its keeper answers on its socket; then the keeper reports how it ends.
        this.pollOrphan(entry, row.proc_start);
        void KeeperLink.adopt(keeperFiles(this.opts.lease.keepersDir, row.uid)).then((link) => {
          if (!link) return;
          if (this.live.get(row.uid) !== entry) { link.release(); return; }
          if (entry.poll) { clearInterval(entry.poll); entry.poll = null; }
          this.attach(entry, link);
          link.terms(this.leaseTerms(row.uid));
        });
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
        // Its keeper, if it had one, left the exit status (and why it stopped it) behind.
        const report = readKeeperExit(keeperFiles(this.opts.lease.keepersDir, row.uid));
        if (report?.note) {
          this.recordEnd(row.uid, { code: report.code, signal: report.signal, endedAt: report.at, forceOutcome: 'lost', note: report.note });
        } else if (report) {
          // Nobody watched how it ended: still 'lost' (the master may fail it over), with the status its keeper saw.
          const how = report.signal ? `signal ${report.signal}` : `exit code ${report.code}`;
          this.recordEnd(row.uid, { code: report.code, signal: report.signal, endedAt: report.at, forceOutcome: 'lost', note: `the slave stopped while this job ran and its process was gone at restart (its keeper saw it end with ${how})` });
        } else {
          this.recordEnd(row.uid, { code: null, signal: null, forceOutcome: 'lost', note: 'the slave stopped while this job ran and its process was gone at restart' });
        }
        result.lost++;
      }
    }
    return result;
  }

  /** 'stop': cancel every running job and wait for it to end; 'leave': let them run on unsupervised until the next start adopts them. */
  async shutdown(mode: 'stop' | 'leave'): Promise<void> {
    this.stopping = true;
    this.opts.spareKeepers?.stop();
    this.watcher.stop();
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    const entries = [...this.live.values()];
    if (mode === 'leave') {
      for (const e of entries) {
        if (e.ladder) clearTimeout(e.ladder);
        if (e.poll) clearInterval(e.poll);
        e.link?.release();
        this.logs.forget(e.uid);
      }
      this.live.clear();
      return;
    }
    for (const e of entries) {
      e.link?.hold(); // unref'd pipes alone would let the process exit before the spiders ended
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

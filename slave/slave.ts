import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Db } from '../common/sqlite.ts';
import type { SlaveConfig } from './config.ts';
import { openSlaveDb } from './db.ts';
import { JobStore } from './jobs/job_store.ts';
import { JobFiles } from './jobs/job_files.ts';
import { HistoryPruner } from './jobs/history_pruner.ts';
import { PackageStore } from './packages/package_store.ts';
import { EnvironmentStore } from './packages/environments.ts';
import { LogMonitor } from './logs/log_monitor.ts';
import { LogStats } from './logs/log_stats.ts';
import type { SpiderErrorRecord } from './logs/scrapy_log_parser.ts';
import { Launcher } from './runner/launcher.ts';
import { Forkservers } from './runner/forkservers.ts';
import { JobLimitStore } from './jobs/job_limits.ts';
import { findScrapyPython } from './runner/python.ts';
import { lookupUser, resolveRunAs } from './runner/run_as.ts';
import { SpiderSandbox } from './runner/sandbox.ts';
import { prepareDataDir } from './runner/data_layout.ts';
import { privateDatabaseFile } from '../common/private_files.ts';
import { SystemMetrics } from './metrics/system_metrics.ts';
import { SlaveCore } from './slave_core.ts';
import { createSlaveApp } from './http/app.ts';
import { Announcer } from './cluster/announcer.ts';
import { MasterLease } from './cluster/master_lease.ts';
import { JobLeaseStore } from './jobs/job_lease.ts';
import { prepareKeepersDir, readToldWindow } from './runner/keepers_dir.ts';

const ERRORS_TO_KEEP = 10_000;

/** The slave daemon: its parts wired together, started and stopped as one. */
export class Slave {
  private constructor(
    readonly config: SlaveConfig,
    readonly core: SlaveCore,
    private readonly db: Db,
    private readonly server: Server,
    private readonly metrics: SystemMetrics,
    private readonly logs: LogMonitor,
    private readonly announcers: Announcer[],
    private readonly pruner: HistoryPruner,
    private readonly forkservers: Forkservers | null,
  ) {}

  get port(): number { return (this.server.address() as AddressInfo).port; }
  get url(): string { return `http://${this.config.bind.includes(':') ? `[${this.config.bind}]` : this.config.bind}:${this.port}`; }

  static async start(config: SlaveConfig): Promise<Slave> {
    const identity = resolveRunAs(config.runAs, process.getuid?.() ?? -1, lookupUser);
    for (const w of identity.warnings) console.warn(`[spiderplane-slave] warning: ${w}`);
    console.log(`[spiderplane-slave] ${identity.summary}`);
    const sandbox = new SpiderSandbox(identity, config.spiderEnv, process.env);
    for (const d of ['logs', 'items', 'eggs', 'packages', 'work', 'envs']) mkdirSync(join(config.dataDir, d), { recursive: true });
    prepareDataDir(config.dataDir, sandbox.who);
    privateDatabaseFile(join(config.dataDir, 'slave.db'));
    const db = openSlaveDb(config.dataDir);
    const jobs = new JobStore(db);
    const files = new JobFiles(join(config.dataDir, 'logs'), join(config.dataDir, 'items'));

    // Scrapy may be installed after the daemon started: look again, at most every 30 s, while none is found.
    let python = await findScrapyPython(config.python);
    let lastLook = Date.now();
    const pythonNow = async () => {
      if (python === null && Date.now() - lastLook > 30_000) {
        lastLook = Date.now();
        python = await findScrapyPython(config.python);
      }
      return python;
    };
    const envs = new EnvironmentStore(db, config.dataDir, sandbox);
    // Builds a kill -9 interrupted never got their envs/KEY link: they are not environments, only litter.
    const unfinished = await envs.removeUnfinished();
    if (unfinished) console.log(`[spiderplane-slave] removed ${unfinished} unfinished environment build(s)`);
    const packages = new PackageStore(db, config.dataDir, {
      maxEntries: config.maxZipEntries, maxTotalUncompressed: config.maxUnzippedBytes, maxEntryUncompressed: config.maxUnzippedBytes,
    }, pythonNow, sandbox, envs);

    const saveErrors = (uid: number, errors: SpiderErrorRecord[]) => {
      const row = jobs.get(uid);
      if (!row) return;
      jobs.replaceErrors(uid, errors.map((e) => ({ job_uid: uid, job: row.id, project: row.project, spider: row.spider, time: e.time, level: e.level, logger: e.logger, message: e.message, traceback: e.traceback })), ERRORS_TO_KEEP);
    };
    let address = `${config.bind}:${config.port}`;
    const logs = new LogMonitor(1000, saveErrors, () => address, config.logparserVersion);
    const keepersDir = prepareKeepersDir(config.dataDir);
    const lease = new MasterLease(config.masterLeaseSeconds, config.masters.length > 0 || (config.masterLeaseSeconds ?? 0) > 0);
    lease.seed(readToldWindow(keepersDir));
    // --forkserver: the slave's interpreter is warmed now; a version's own environment at its first job.
    const forkservers = config.forkserver ? new Forkservers(config.dataDir, sandbox) : null;
    if (forkservers && python) forkservers.warm(python);
    const launcher = new Launcher(jobs, packages, files, logs, () => python, sandbox, {
      forkservers,
      maxProc: config.maxProc, maxProcPerCpu: config.maxProcPerCpu, cancelGraceSeconds: config.cancelGraceSeconds,
      jobsToKeep: config.jobsToKeep, orphans: config.orphans,
      limits: { store: new JobLimitStore(db), defaults: { maxRuntime: config.maxRuntimeSeconds, maxMemory: config.maxMemoryMiB, nice: config.nice } },
      lease: {
        clock: lease,
        store: new JobLeaseStore(db),
        keepersDir,
      },
    });
    launcher.on('errors', saveErrors);
    const core = new SlaveCore(jobs, packages, files, launcher);
    const recovered = launcher.recoverAfterRestart();
    if (recovered.adopted + recovered.lost + recovered.killed > 0) {
      console.log(`[spiderplane-slave] after restart: ${recovered.adopted} running spider(s) re-adopted, ${recovered.killed} stopped, ${recovered.lost} recorded as lost`);
    }
    logs.start();
    const pruner = new HistoryPruner(jobs, config.historyToKeep);
    pruner.start();
    void pruner.prune().catch((e) => console.error('[spiderplane-slave] pruning the job history failed:', e));
    const metrics = new SystemMetrics(config.metricsIntervalSeconds * 1000);
    await metrics.start();

    const app = createSlaveApp(config, core, metrics, new LogStats(jobs, logs, () => address, files.logsDir, config.logparserVersion));
    const server = createServer(app.callback());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.bind, () => { server.off('error', reject); resolve(); });
    });
    address = `${config.bind.includes(':') ? `[${config.bind}]` : config.bind}:${(server.address() as AddressInfo).port}`;
    launcher.kick();
    launcher.startLeaseWatch();
    // Every master sharing the database is told (any of them may be the leader that heartbeats).
    const advertised = config.advertiseUrl ?? `http://${address}`;
    const announcers = config.masters.map((m) => new Announcer(m, config.clusterToken,
      () => ({ name: config.nodeName, url: advertised, max_proc: launcher.maxProc, labels: config.labels }), undefined, () => launcher.masterContact(null)));
    for (const a of announcers) a.start();
    return new Slave(config, core, db, server, metrics, logs, announcers, pruner, forkservers);
  }

  /** Stops listening, settles running spiders per on-shutdown, and closes the database. */
  async stop(): Promise<void> {
    for (const a of this.announcers) a.stop();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.core.launcher.shutdown(this.config.onShutdown);
    this.forkservers?.stop();
    this.metrics.stop();
    this.logs.stop();
    await this.pruner.stop();
    this.db.close();
  }
}

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { privateDatabaseFile, privateDir } from '../common/private_files.ts';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { MasterConfig } from './config.ts';
import { openMasterStore } from './store/open_store.ts';
import { isUniqueViolation, type SqlDb } from './store/sql_db.ts';
import { Leadership } from './cluster/leadership.ts';
import { LeaderDuties } from './cluster/leader_duties.ts';
import type { Fence } from './cluster/fence.ts';
import { NodeRegistry, type NodeRow } from './nodes/node_registry.ts';
import { NodeClient } from './nodes/node_client.ts';
import { NodeJobsCache } from './nodes/node_jobs_cache.ts';
import { Heartbeat } from './nodes/heartbeat.ts';
import { normaliseNodeUrl } from './nodes/node_url.ts';
import { PackageRepo } from './packages/package_repo.ts';
import { Deployer } from './packages/deployer.ts';
import { LoadBalancer } from './runs/load_balancer.ts';
import { DispatchLoadStore } from './runs/dispatch_load_store.ts';
import { RunStore, type RunRow } from './runs/run_store.ts';
import { Dispatcher } from './runs/dispatcher.ts';
import { RunTracker } from './runs/run_tracker.ts';
import { RunPolicyStore } from './runs/run_policy_store.ts';
import { RetryManager } from './runs/retry_manager.ts';
import { RunRetention } from './runs/run_retention.ts';
import { SettingsStore } from './settings_store.ts';
import { ScheduleStore } from './schedules/schedule_store.ts';
import { Scheduler } from './schedules/scheduler.ts';
import { UserProblem, UserStore } from './auth/users.ts';
import { LoginLimiter, SessionStore } from './web/sessions.ts';
import { createMasterApp } from './http/app.ts';
import { AlertService, errorLinesVia } from './alerts/alert_service.ts';
import { ServiceStore, type ServiceRow } from './services/service_store.ts';
import { ServiceReconciler } from './services/reconciler.ts';

export class NodeProblem extends Error {}

/** The control plane: its parts wired together, with the operations the API and the UI share. */
export class Master {
  readonly nodes: NodeRegistry;
  readonly repo: PackageRepo;
  readonly deployer: Deployer;
  readonly runs: RunStore;
  readonly dispatcher: Dispatcher;
  readonly tracker: RunTracker;
  readonly policies: RunPolicyStore;
  readonly retries: RetryManager;
  readonly schedules: ScheduleStore;
  readonly scheduler: Scheduler;
  readonly users: UserStore;
  readonly sessions: SessionStore;
  /** Failed logins, shared by the login page and HTTP basic auth. */
  readonly loginLimiter: LoginLimiter;
  readonly heartbeat: Heartbeat;
  readonly alerts: AlertService;
  /** Spider services: desired state, and the loop that keeps their replicas running. */
  readonly services: ServiceStore;
  readonly reconciler: ServiceReconciler;
  readonly balancer: LoadBalancer;
  /** Each node's last listjobs.json (pids, which logs and items exist), for the Scrapyd facade. */
  readonly nodeJobs: NodeJobsCache;
  readonly retention: RunRetention;
  readonly clusterToken: string;
  private server: Server | null = null;

  /** Which master leads (a lease in the database); only the leader runs `duties`. */
  readonly leadership: Leadership;
  readonly duties: LeaderDuties;

  private constructor(readonly config: MasterConfig, readonly sql: SqlDb, clusterToken: string) {
    this.clusterToken = clusterToken;
    // Every request tells a slave the master's offline window: its lease (slave/cluster/master_lease.ts).
    const clientFor = (n: NodeRow, timeoutMs = config.heartbeatTimeoutMs * 2) => new NodeClient(n, this.clusterToken, timeoutMs, config.offlineAfterMs / 1000);
    this.nodes = new NodeRegistry(sql);
    this.nodeJobs = new NodeJobsCache(sql);
    this.repo = new PackageRepo(sql, join(config.dataDir, 'packages'));
    this.deployer = new Deployer(sql, this.repo, this.nodes, clientFor);
    this.runs = new RunStore(sql);
    this.policies = new RunPolicyStore(sql);
    this.balancer = new LoadBalancer(new DispatchLoadStore(sql));
    this.dispatcher = new Dispatcher(this.runs, this.repo, this.nodes, this.balancer, (n) => clientFor(n), this.policies);
    this.tracker = new RunTracker(this.runs, this.nodes, this.dispatcher, (n) => clientFor(n));
    this.retries = new RetryManager(this.runs, this.policies, this.dispatcher, this.nodes);
    this.retention = new RunRetention(this.runs, { maxAgeMs: config.historyMaxAgeMs, maxRuns: config.historyMaxRuns });
    this.schedules = new ScheduleStore(sql);
    this.scheduler = new Scheduler(this.schedules, this.runs, this.dispatcher);
    this.users = new UserStore(sql, { bcryptRounds: config.bcryptRounds });
    this.sessions = new SessionStore(sql);
    this.loginLimiter = new LoginLimiter(sql);
    this.heartbeat = new Heartbeat(this.nodes, clientFor, {
      intervalMs: config.heartbeatIntervalMs, timeoutMs: config.heartbeatTimeoutMs, offlineAfterMs: config.offlineAfterMs,
    });
    this.heartbeat.on('heartbeat', (h) => {
      this.balancer.recordHeartbeat(h.node.id, h.requestedAt).catch((e) => console.error('[spiderplane-master] dispatch accounting:', e));
      this.nodeJobs.record(h.node.id, h.jobs);
      // The reconciler counts a node's replicas only once this heartbeat's jobs are in the runs table.
      this.tracker.onHeartbeat(h).then(() => this.reconciler.heardFrom(h.node.id), (e) => console.error('[spiderplane-master] run sync failed:', e));
    });
    this.heartbeat.on('online', (n: NodeRow) => {
      console.log(`[spiderplane-master] node ${n.name} is online`);
      this.deployer.reconcile(n).catch((e) => console.error(`[spiderplane-master] bringing ${n.name} up to date failed:`, (e as Error).message));
    });
    this.heartbeat.on('offline', (n: NodeRow) => {
      console.log(`[spiderplane-master] node ${n.name} is offline: its runs fail over`);
      this.reconciler.forgetNode(n.id);
      this.tracker.onOffline(n).catch((e) => console.error('[spiderplane-master] failover failed:', e)).finally(() => this.reconciler.kick());
    });
    this.alerts = new AlertService(sql, this.nodes, this.runs, errorLinesVia(this.nodes, (n) => clientFor(n)), {
      flags: config.smtp, publicUrl: () => config.publicUrl ?? this.url, groupMs: config.alertGroupMs, groupWaitMs: config.alertGroupWaitMs,
      retryMinMs: config.mailRetryMinMs, retryMaxMs: config.mailRetryMaxMs, evalIntervalMs: config.heartbeatIntervalMs, rawRetentionMs: config.metricsRetentionMs,
    });
    // The retry is planned first, so the failure alert can say when it comes (or that it gave up).
    this.tracker.on('finished', (run: RunRow) => {
      this.retries.onRunEnded(run).then((r) => this.alerts.onRunEnded(r), (e) => {
        console.error('[spiderplane-master] planning a retry failed:', e);
        this.alerts.onRunEnded(run);
      });
    });
    this.tracker.on('lost', (run: RunRow) => this.alerts.onRunEnded(run));
    this.services = new ServiceStore(sql);
    this.reconciler = new ServiceReconciler(this.services, this.runs, this.nodes, this.repo, this.dispatcher, this.tracker, this.heartbeat, {
      tickMs: 1_000, offlineAfterMs: config.offlineAfterMs,
    });
    this.leadership = new Leadership(sql, {
      ttlMs: config.leaderLeaseMs, renewMs: config.leaderLeaseMs / 5, url: () => config.publicUrl ?? this.url,
      takeOverAtStart: sql.dialect === 'sqlite', id: masterId(config.dataDir),
    });
    const fence: Fence = (fn) => this.leadership.fenced(fn);
    this.heartbeat.fence = fence;
    this.scheduler.fence = fence;
    this.retries.fence = fence;
    this.alerts.fence = fence;
    this.reconciler.fence = fence;
    // What must happen once, in the order a restarted master did it: deploys a dead leader left
    // half done, heartbeats (each node gets a full window first), services, the alert cursor before
    // the scheduler records missed occurrences, cron, retries, alerts and mail, pruning.
    this.duties = new LeaderDuties([
      { name: 'deploy recovery', start: () => this.deployer.recoverInterrupted(), stop: () => undefined },
      { name: 'heartbeats', start: () => { this.nodeJobs.forgetWritten(); this.heartbeat.start(); }, stop: () => this.heartbeat.stop() },
      { name: 'service reconciliation', start: () => this.reconciler.start(), stop: () => this.reconciler.stop() },
      { name: 'alert cursor', start: () => this.alerts.prepare(), stop: () => undefined },
      { name: 'cron', start: () => this.scheduler.start(), stop: () => this.scheduler.stop() },
      { name: 'retries', start: () => this.retries.start(), stop: () => this.retries.stop() },
      { name: 'alerts and mail', start: () => this.alerts.start(), stop: () => this.alerts.stop() },
      { name: 'history retention', start: () => this.retention.start(), stop: () => this.retention.stop() },
    ]);
    this.leadership.on('elected', () => { void this.duties.lead(); });
    this.leadership.on('deposed', () => { void this.duties.follow(); });
    this.reconciler.on('status', (s: ServiceRow) => this.alerts.onServiceStatus({
      id: s.id, name: s.name, project: s.project, spider: s.spider, status: s.status, detail: s.status_detail, since: s.status_since,
    }));
    this.tracker.on('finished', (run: RunRow) => { if (run.service_id) this.reconciler.kick(); });
    this.tracker.on('lost', (run: RunRow) => { if (run.service_id) this.reconciler.kick(); });
  }

  /**
   * The cluster token kept in the database (made once, on first start, when none is configured;
   * masters starting together on one database agree on the first one stored).
   */
  private static async storedClusterToken(sql: SqlDb): Promise<string> {
    const settings = new SettingsStore(sql);
    await settings.setIfAbsent('cluster_token', randomBytes(24).toString('base64url'));
    return (await settings.get('cluster_token'))!;
  }

  /** Whether this master leads, the current epoch, and every master seen lately (for /api/status, the dashboard, /metrics). */
  leadershipStatus(): ReturnType<Leadership['status']> {
    return this.leadership.status(this.config.leaderLeaseMs * 3);
  }

  get port(): number { return (this.server!.address() as AddressInfo).port; }
  get url(): string { return `http://${this.config.bind.includes(':') ? `[${this.config.bind}]` : this.config.bind}:${this.port}`; }

  static async start(config: MasterConfig): Promise<Master> {
    mkdirSync(join(config.dataDir, 'packages'), { recursive: true });
    // Users, sessions and the cluster token live here: never readable by spiders (--local-slave).
    privateDir(config.dataDir);
    if (config.database.kind === 'sqlite') privateDatabaseFile(config.database.file);
    const sql = await openMasterStore(config.database);
    const master = new Master(config, sql, config.clusterToken ?? await Master.storedClusterToken(sql));
    await master.ensureAdmin();
    const app = createMasterApp(master);
    master.server = createServer(app.callback());
    await new Promise<void>((resolve, reject) => {
      master.server!.once('error', reject);
      master.server!.listen(config.port, config.bind, () => { master.server!.off('error', reject); resolve(); });
    });
    // A lone master (and every master on SQLite) leads from its first tick; on a shared
    // PostgreSQL this one leads once the current leader's lease is gone.
    await master.leadership.start();
    await master.duties.settled();
    return master;
  }

  /** First start: the admin from --admin-user/--admin-password, or a random password printed once. */
  private async ensureAdmin(): Promise<void> {
    if ((await this.users.count()) > 0) return;
    const username = this.config.adminUser ?? 'admin';
    const password = this.config.adminPassword ?? randomBytes(12).toString('base64url');
    try {
      await this.users.create(username, password, 'admin');
    } catch (e) {
      // Masters starting together on one database: another one created it first.
      if (e instanceof UserProblem && (await this.users.count()) > 0) return;
      throw e;
    }
    if (this.config.adminPassword === null) {
      console.log(`[spiderplane-master] created the first admin: user '${username}', password '${password}' (shown once; change it after logging in)`);
    } else {
      console.log(`[spiderplane-master] created the first admin user '${username}'`);
    }
  }

  async stop(): Promise<void> {
    // The leader's work stops before its lease is let go, so a standby never overlaps it.
    await this.duties.follow();
    await this.leadership.stop();
    if (this.server) {
      await new Promise<void>((resolve) => {
        this.server!.close(() => resolve());
        this.server!.closeAllConnections();
      });
    }
    await this.nodes.flushSamples().catch((e) => console.error('[spiderplane-master] writing metric samples failed:', e));
    await this.nodeJobs.flush().catch((e) => console.error('[spiderplane-master] writing node job listings failed:', e));
    await this.sql.close();
  }

  // ---- nodes ----

  async addNode(p: { url: string; name: string | null; username: string | null; password: string | null; labels?: Record<string, string> | null }, source: 'added' | 'announced' = 'added', maxProc: number | null = null, retried = false): Promise<NodeRow> {
    let url: string;
    try {
      url = normaliseNodeUrl(p.url);
    } catch (e) {
      throw new NodeProblem((e as Error).message);
    }
    if ((p.username === null) !== (p.password === null)) throw new NodeProblem('give both username and password, or neither');
    const name = p.name ?? new URL(url).host;
    if (!/^[A-Za-z0-9_.:@-]{1,200}$/.test(name)) throw new NodeProblem(`node name '${name}' may only hold letters, digits and _ . : @ -`);
    const sameUrl = await this.nodes.byUrl(url);
    const sameName = await this.nodes.byName(name);
    if (source === 'announced') {
      // A slave is known by its URL; a name already held by another URL is taken over only when
      // that node is not online (the slave moved), never from a live node.
      const existing = sameUrl ?? sameName;
      if (existing) {
        if (!sameUrl && existing.status === 'online') throw new NodeProblem(`node name '${name}' is already used by the online node at ${existing.url}: give this slave another --node-name`);
        await this.nodes.updateAnnounce(existing.id, url, maxProc);
        if (p.labels) await this.nodes.setLabels(existing.id, p.labels);
        return (await this.nodes.byId(existing.id))!;
      }
    } else {
      if (sameUrl) throw new NodeProblem(`url ${url} is already registered as node '${sameUrl.name}'`);
      if (sameName) throw new NodeProblem(`a node named '${name}' already exists`);
    }
    let node: NodeRow;
    try {
      node = await this.nodes.add({ name, url, username: p.username, password: p.password, source, max_proc: maxProc });
    } catch (e) {
      // Another announce (or another master) added it between the look-up and the insert.
      if (!isUniqueViolation(e)) throw e;
      if (source === 'announced' && !retried) return this.addNode(p, source, maxProc, true);
      throw new NodeProblem(`a node with the name '${name}' or the url ${url} already exists`);
    }
    if (p.labels) {
      await this.nodes.setLabels(node.id, p.labels);
      node = (await this.nodes.byId(node.id))!;
    }
    this.heartbeat.poll(node.id).catch((e) => console.error('[spiderplane-master] polling a new node failed:', e));
    return node;
  }

  async removeNode(name: string): Promise<boolean> {
    const node = await this.nodes.byName(name);
    if (!node) return false;
    // Its active runs are not forgotten: they are stopped there (best effort: it may be dead)
    // and fail over like a dead node's.
    const client = new NodeClient(node, this.clusterToken, 5_000);
    await Promise.all((await this.runs.activeOfNode(node.id)).map((r) => client.cancel(r.project, r.job, 'KILL').catch(() => undefined)));
    await this.tracker.onOffline(node, 'was removed');
    await this.nodes.remove(node.id);
    await this.balancer.forget(node.id);
    await this.nodeJobs.forget(node.id);
    this.reconciler.forgetNode(node.id);
    this.reconciler.kick();
    return true;
  }
}

/**
 * This master's id, kept in its data folder: the same across its restarts (so a restarted master
 * takes back its own lease at once), different for every master with its own folder.
 */
function masterId(dataDir: string): string {
  const file = join(dataDir, 'master-id');
  try {
    const id = readFileSync(file, 'utf8').trim();
    if (/^[A-Za-z0-9_.-]{1,100}$/.test(id)) return id;
  } catch { /* first start */ }
  const id = `${hostname().replace(/[^A-Za-z0-9_.-]/g, '').slice(0, 40) || 'master'}-${randomBytes(4).toString('hex')}`;
  try {
    writeFileSync(file, `${id}\n`, { mode: 0o600, flag: 'wx' });
  } catch {
    return readFileSync(file, 'utf8').trim(); // another process wrote it first
  }
  return id;
}

import { resolve } from 'node:path';
import { parseOptions, withDefaults, type OptionSpec } from '../common/options.ts';
import { TRUSTED_PROXY_OPTION, parseTrustedList } from './http/proxy.ts';
import { parseDatabaseLocation, type DatabaseLocation } from './store/open_store.ts';

export const MASTER_OPTIONS: readonly OptionSpec[] = [
  { flag: 'bind', env: 'SPIDERPLANE_MASTER_BIND', type: 'string', default: '127.0.0.1', help: 'address to listen on' },
  { flag: 'port', env: 'SPIDERPLANE_MASTER_PORT', type: 'int', default: 5000, min: 0, help: 'HTTP port (0 = any free port)' },
  { flag: 'data-dir', env: 'SPIDERPLANE_MASTER_DATA_DIR', type: 'string', default: './data/master', help: 'folder for the database and uploaded packages' },
  { flag: 'database', env: 'SPIDERPLANE_DATABASE_URL', type: 'string', default: null, help: "the master's store: sqlite:PATH (default: master.db in --data-dir) or postgres://USER:PASSWORD@HOST:PORT/DB (several masters may share one PostgreSQL; one of them leads)" },
  { flag: 'leader-lease', env: 'SPIDERPLANE_LEADER_LEASE', type: 'number', default: 10, min: 0.5, help: 'seconds a leader\'s lease lasts without renewal (renewed every fifth of it): a standby takes over within about 1.2× this after the leader dies' },
  { flag: 'cluster-token', env: 'SPIDERPLANE_CLUSTER_TOKEN', type: 'string', default: null, help: 'shared secret: slaves announce with it and the master calls them with it (generated and stored on first start when not given)' },
  { flag: 'heartbeat-interval', env: 'SPIDERPLANE_HEARTBEAT_INTERVAL', type: 'number', default: 5, min: 0.1, help: 'seconds between heartbeats of every node' },
  { flag: 'heartbeat-timeout', env: 'SPIDERPLANE_HEARTBEAT_TIMEOUT', type: 'number', default: 4, min: 0.1, help: 'seconds a node has to answer a heartbeat' },
  { flag: 'offline-after', env: 'SPIDERPLANE_OFFLINE_AFTER', type: 'number', default: 60, min: 0.1, help: 'seconds without a good heartbeat before a node is offline and its runs fail over' },
  { flag: 'max-retries', env: 'SPIDERPLANE_MAX_RETRIES', type: 'int', default: 2, min: 0, help: 'default re-dispatches of a run lost with its node (schedules set their own)' },
  { flag: 'admin-user', env: 'SPIDERPLANE_ADMIN_USER', type: 'string', default: null, help: 'first admin user, created on first start' },
  { flag: 'admin-password', env: 'SPIDERPLANE_ADMIN_PASSWORD', type: 'string', default: null, help: 'first admin password, created on first start (a random one is printed when absent)' },
  { flag: 'bcrypt-rounds', env: 'SPIDERPLANE_BCRYPT_ROUNDS', type: 'int', default: 12, min: 4, max: 15, help: 'bcrypt cost of passwords set from now on (each step doubles a check\'s CPU; lower it only for tests)' },
  { flag: 'max-upload-mb', env: 'SPIDERPLANE_MAX_UPLOAD_MB', type: 'number', default: 200, min: 0.001, help: 'largest package upload accepted, in MiB' },
  { flag: 'metrics-retention-hours', env: 'SPIDERPLANE_METRICS_RETENTION_HOURS', type: 'number', default: 6, min: 0.01, help: 'hours of per-heartbeat node metrics kept (then 1-minute, 1-hour and 1-day roll-ups)' },
  { flag: 'history-days', env: 'SPIDERPLANE_HISTORY_DAYS', type: 'number', default: 180, min: 0, help: 'days an ended run is kept in the history (0 = no age limit); active runs are never deleted' },
  { flag: 'history-max-runs', env: 'SPIDERPLANE_HISTORY_MAX_RUNS', type: 'int', default: 1_000_000, min: 0, help: 'most runs kept in the history: the oldest ended ones go first (0 = no cap)' },
  { flag: 'local-slave', env: 'SPIDERPLANE_LOCAL_SLAVE', type: 'bool', default: false, help: 'also start a slave on this machine (127.0.0.1:6800, data in DATA_DIR/../slave) that joins this master; its spiders\' user and environment follow SPIDERPLANE_RUN_AS, SPIDERPLANE_SPIDER_ENV, SPIDERPLANE_SPIDER_ENV_PASS' },
  { flag: 'local-slave-port', env: 'SPIDERPLANE_LOCAL_SLAVE_PORT', type: 'int', default: 6800, min: 0, help: 'port of the --local-slave' },
  { flag: 'node-name', env: 'SPIDERPLANE_NODE_NAME', type: 'string', default: null, help: 'node_name the master reports on its Scrapyd API (default: the hostname)' },
  { flag: 'smtp-host', env: 'SPIDERPLANE_SMTP_HOST', type: 'string', default: null, help: 'SMTP server for alert mails (Settings in the UI override these flags)' },
  { flag: 'smtp-port', env: 'SPIDERPLANE_SMTP_PORT', type: 'int', default: null, min: 1, help: 'SMTP port (default 587, or 465 with --smtp-secure tls, 25 with none)' },
  { flag: 'smtp-secure', env: 'SPIDERPLANE_SMTP_SECURE', type: 'string', default: 'starttls', choices: ['none', 'starttls', 'tls'], help: "SMTP security: 'starttls' (required), 'tls' (implicit TLS) or 'none'" },
  { flag: 'smtp-user', env: 'SPIDERPLANE_SMTP_USER', type: 'string', default: null, help: 'SMTP user (with --smtp-password)' },
  { flag: 'smtp-password', env: 'SPIDERPLANE_SMTP_PASSWORD', type: 'string', default: null, help: 'SMTP password (never shown back nor logged)' },
  { flag: 'smtp-from', env: 'SPIDERPLANE_SMTP_FROM', type: 'string', default: null, help: "From address of alert mails (default spiderplane@HOST)" },
  { flag: 'alert-to', env: 'SPIDERPLANE_ALERT_TO', type: 'string', default: null, help: 'default alert recipients, comma-separated' },
  { flag: 'public-url', env: 'SPIDERPLANE_PUBLIC_URL', type: 'string', default: null, help: "the master's web UI URL as users reach it, for links in mails (default its listening URL)" },
  { flag: 'alert-group-seconds', env: 'SPIDERPLANE_ALERT_GROUP_SECONDS', type: 'number', default: 60, min: 0, help: 'at most one alert mail per recipient per this many seconds: alerts in between are grouped' },
  { flag: 'alert-group-wait', env: 'SPIDERPLANE_ALERT_GROUP_WAIT', type: 'number', default: 5, min: 0, help: 'seconds an alert waits for others that fire with it before its mail is written' },
  { flag: 'mail-retry-min', env: 'SPIDERPLANE_MAIL_RETRY_MIN', type: 'number', default: 5, min: 0.01, help: 'seconds before the first retry of a mail the SMTP server did not take (doubling each time)' },
  TRUSTED_PROXY_OPTION,
  { flag: 'mail-retry-max', env: 'SPIDERPLANE_MAIL_RETRY_MAX', type: 'number', default: 600, min: 0.01, help: 'longest wait between two retries of a mail, in seconds' },
];

export interface MasterConfig {
  bind: string;
  port: number;
  dataDir: string;
  database: DatabaseLocation;
  leaderLeaseMs: number;
  clusterToken: string | null;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  offlineAfterMs: number;
  maxRetries: number;
  adminUser: string | null;
  adminPassword: string | null;
  bcryptRounds: number;
  maxUploadBytes: number;
  metricsRetentionMs: number;
  historyMaxAgeMs: number;
  historyMaxRuns: number;
  localSlave: boolean;
  localSlavePort: number;
  nodeName: string | null;
  trustedProxy: string[];
  smtp: { host: string | null; port: number | null; secure: 'none' | 'starttls' | 'tls'; user: string | null; password: string | null; from: string | null; to: string[] };
  publicUrl: string | null;
  alertGroupMs: number;
  alertGroupWaitMs: number;
  mailRetryMinMs: number;
  mailRetryMaxMs: number;
}

export function loadMasterConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): MasterConfig {
  return masterConfig(parseOptions(MASTER_OPTIONS, argv, env));
}

export function masterConfig(v: Record<string, unknown>): MasterConfig {
  const { o, str } = withDefaults(MASTER_OPTIONS, v);
  return {
    bind: String(o.bind),
    port: Number(o.port),
    dataDir: resolve(String(o.data_dir)),
    database: parseDatabaseLocation(str('database'), resolve(String(o.data_dir))),
    leaderLeaseMs: Number(o.leader_lease) * 1000,
    clusterToken: str('cluster_token'),
    heartbeatIntervalMs: Number(o.heartbeat_interval) * 1000,
    heartbeatTimeoutMs: Number(o.heartbeat_timeout) * 1000,
    offlineAfterMs: Number(o.offline_after) * 1000,
    maxRetries: Number(o.max_retries),
    adminUser: str('admin_user'),
    adminPassword: str('admin_password'),
    bcryptRounds: Number(o.bcrypt_rounds),
    maxUploadBytes: Math.floor(Number(o.max_upload_mb) * 1024 * 1024),
    metricsRetentionMs: Number(o.metrics_retention_hours) * 3600_000,
    historyMaxAgeMs: Number(o.history_days) * 24 * 3600_000,
    historyMaxRuns: Number(o.history_max_runs),
    localSlave: o.local_slave === true,
    localSlavePort: Number(o.local_slave_port),
    nodeName: str('node_name'),
    trustedProxy: parseTrustedList(str('trusted_proxy')),
    smtp: {
      host: str('smtp_host'), port: o.smtp_port === null || o.smtp_port === undefined ? null : Number(o.smtp_port),
      secure: (str('smtp_secure') ?? 'starttls') as 'none' | 'starttls' | 'tls', user: str('smtp_user'), password: str('smtp_password'),
      from: str('smtp_from'), to: (str('alert_to') ?? '').split(',').map((x) => x.trim()).filter((x) => x !== ''),
    },
    publicUrl: str('public_url'),
    alertGroupMs: Number(o.alert_group_seconds) * 1000,
    alertGroupWaitMs: Number(o.alert_group_wait) * 1000,
    mailRetryMinMs: Number(o.mail_retry_min) * 1000,
    mailRetryMaxMs: Number(o.mail_retry_max) * 1000,
  };
}

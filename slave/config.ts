import type { LogParserVersion } from './logs/logparser_json.ts';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { parseLabelList } from '../common/labels.ts';
import { OptionError, parseOptions, withDefaults, type OptionSpec } from '../common/options.ts';
import { parseSpiderEnvOptions, SpiderEnvError, type SpiderEnvConfig } from './runner/spider_env.ts';
import { isLoopbackBind } from '../common/loopback.ts';

export const SLAVE_OPTIONS: readonly OptionSpec[] = [
  { flag: 'bind', env: 'SPIDERPLANE_SLAVE_BIND', type: 'string', default: '127.0.0.1', help: 'address to listen on', aliases: ['bind_address'] },
  { flag: 'port', env: 'SPIDERPLANE_SLAVE_PORT', type: 'int', default: 6800, min: 0, help: 'HTTP port (0 = any free port)', aliases: ['http_port'] },
  { flag: 'data-dir', env: 'SPIDERPLANE_SLAVE_DATA_DIR', type: 'string', default: './data/slave', help: 'folder for the database, packages, logs and items' },
  { flag: 'max-proc', env: 'SPIDERPLANE_MAX_PROC', type: 'int', default: 0, min: 0, help: 'most spiders running at once (0 = cpus x max-proc-per-cpu)' },
  { flag: 'max-proc-per-cpu', env: 'SPIDERPLANE_MAX_PROC_PER_CPU', type: 'int', default: 4, min: 1, help: 'used when max-proc is 0' },
  { flag: 'python', env: 'SPIDERPLANE_PYTHON', type: 'string', default: null, help: 'Python interpreter for Scrapy eggs (default: first of /usr/bin/python3, python3 that imports scrapy)' },
  { flag: 'username', env: 'SPIDERPLANE_USERNAME', type: 'string', default: null, help: 'HTTP basic auth user (with --password)' },
  { flag: 'password', env: 'SPIDERPLANE_PASSWORD', type: 'string', default: null, help: 'HTTP basic auth password' },
  { flag: 'insecure-no-auth', env: 'SPIDERPLANE_INSECURE_NO_AUTH', type: 'bool', default: false, help: 'listen beyond loopback without --username/--password or --cluster-token (anyone who reaches the port can run code here)' },
  { flag: 'node-name', env: 'SPIDERPLANE_NODE_NAME', type: 'string', default: null, help: 'name reported as node_name (default: the hostname)' },
  { flag: 'finished-to-keep', env: 'SPIDERPLANE_FINISHED_TO_KEEP', type: 'int', default: 100, min: 1, help: 'newest finished jobs listed by listjobs.json and /jobs (Scrapyd\'s setting)' },
  { flag: 'history-to-keep', env: 'SPIDERPLANE_HISTORY_TO_KEEP', type: 'int', default: 100000, min: 1, help: 'finished job records kept in the database (/jobs.json, stats, errors); never fewer than finished-to-keep; the oldest beyond it are deleted in batches every 10 s' },
  { flag: 'jobs-to-keep', env: 'SPIDERPLANE_JOBS_TO_KEEP', type: 'int', default: 5, min: 1, help: 'log and items files kept per spider' },
  { flag: 'max-upload-mb', env: 'SPIDERPLANE_MAX_UPLOAD_MB', type: 'number', default: 200, min: 0.001, help: 'largest package upload accepted, in MiB' },
  { flag: 'max-unzipped-mb', env: 'SPIDERPLANE_MAX_UNZIPPED_MB', type: 'number', default: 1024, min: 0.001, help: 'largest total uncompressed size of a package, in MiB' },
  { flag: 'max-zip-entries', env: 'SPIDERPLANE_MAX_ZIP_ENTRIES', type: 'int', default: 20000, min: 1, help: 'most files in a package' },
  { flag: 'max-runtime', env: 'SPIDERPLANE_MAX_RUNTIME', type: 'number', default: 0, min: 0, help: 'default limit on a run in seconds: TERM, then KILL after cancel-grace, outcome "timeout" (0 = none; per job: _max_runtime)' },
  { flag: 'max-memory', env: 'SPIDERPLANE_MAX_MEMORY', type: 'number', default: 0, min: 0, help: 'default limit on the RSS of a run\'s whole process tree in MiB: TERM, then KILL, outcome "memory" (0 = none; per job: _max_memory)' },
  { flag: 'nice', env: 'SPIDERPLANE_NICE', type: 'int', default: 0, min: 0, help: 'default nice level (0..19, higher values count as 19) spiders start with (per job: _nice)' },
  { flag: 'cancel-grace', env: 'SPIDERPLANE_CANCEL_GRACE', type: 'number', default: 30, min: 0.1, help: 'seconds between the escalation steps of a cancel: INT, then TERM, then KILL' },
  { flag: 'on-shutdown', env: 'SPIDERPLANE_ON_SHUTDOWN', type: 'string', default: 'stop', choices: ['stop', 'leave'], help: "on SIGTERM/SIGINT: 'stop' running spiders gracefully, or 'leave' them running to be re-adopted at the next start" },
  { flag: 'orphans', env: 'SPIDERPLANE_ORPHANS', type: 'string', default: 'adopt', choices: ['adopt', 'kill'], help: "spider processes that outlived a crashed slave: 'adopt' and supervise them, or 'kill' them" },
  { flag: 'metrics-interval', env: 'SPIDERPLANE_METRICS_INTERVAL', type: 'number', default: 5, min: 1, help: 'seconds between system metric samples' },
  { flag: 'master', env: 'SPIDERPLANE_MASTER', type: 'string', default: null, help: 'URL of the spiderplane master to announce this slave to; several masters sharing one database: URL1,URL2,… (each is told; a load balancer URL works too)' },
  { flag: 'master-lease', env: 'SPIDERPLANE_MASTER_LEASE', type: 'number', default: null, min: 0, help: "seconds with no word from any master after which runs the master fails over (sent with _keep_running=0) are stopped here; a master's own window (its --offline-after, sent with every request) takes precedence; 0 = never stop them" },
  { flag: 'cluster-token', env: 'SPIDERPLANE_CLUSTER_TOKEN', type: 'string', default: null, help: 'shared secret between master and slaves (also accepted as a Bearer token on this API)' },
  { flag: 'logparser-version', env: 'SPIDERPLANE_LOGPARSER_VERSION', type: 'string', default: '0.8.4', choices: ['0.8.4', '0.8.2'], help: "LogParser whose JSON /logs/stats.json and /logs/P/S/JOB.json imitate: '0.8.4' for ScrapydWeb 1.6, '0.8.2' for ScrapydWeb 1.4/1.5 (each wants its own, exactly)" },
  { flag: 'label', env: 'SPIDERPLANE_LABELS', type: 'list', default: [], help: "a label NAME=VALUE announced to the master, which spider services can require (repeatable; in the environment or config file: items separated by spaces or commas, or a JSON array)" },
  { flag: 'advertise-url', env: 'SPIDERPLANE_ADVERTISE_URL', type: 'string', default: null, help: 'URL the master should use to reach this slave (default http://BIND:PORT)' },
  { flag: 'run-as', env: 'SPIDERPLANE_RUN_AS', type: 'string', default: null, help: 'user spiders run as when the daemon runs as root (default spiderplane-run, else nobody with a warning); a non-root daemon runs them as itself' },
  { flag: 'forkserver', env: 'SPIDERPLANE_FORKSERVER', type: 'bool', default: false, help: 'warm Python start: Scrapy jobs are forked from a forkserver per Python environment that has Scrapy imported (schedule to first request in ~0.1 s instead of ~0.7 s); falls back to a plain spawn when it cannot start' },
  { flag: 'no-forkserver', env: 'SPIDERPLANE_NO_FORKSERVER', type: 'bool', default: false, help: 'spawn every spider as a fresh process (overrides --forkserver)' },
  { flag: 'spider-env', env: 'SPIDERPLANE_SPIDER_ENV', type: 'list', default: [], help: 'NAME=VALUE added to every spider\'s environment (repeatable; SPIDERPLANE_*/SCRAPY_* names refused)' },
  { flag: 'spider-env-pass', env: 'SPIDERPLANE_SPIDER_ENV_PASS', type: 'list', default: [], help: 'NAME of a variable of the daemon\'s environment copied to spiders (repeatable; SPIDERPLANE_*/SCRAPY_* names refused)' },
];

export interface SlaveConfig {
  bind: string;
  port: number;
  dataDir: string;
  maxProc: number;
  maxProcPerCpu: number;
  python: string | null;
  username: string | null;
  password: string | null;
  nodeName: string;
  finishedToKeep: number;
  historyToKeep: number;
  jobsToKeep: number;
  maxUploadBytes: number;
  maxUnzippedBytes: number;
  maxZipEntries: number;
  cancelGraceSeconds: number;
  /** defaults for runs that do not set _max_runtime / _max_memory / _nice (0 = none) */
  maxRuntimeSeconds: number;
  maxMemoryMiB: number;
  nice: number;
  onShutdown: 'stop' | 'leave';
  orphans: 'adopt' | 'kill';
  metricsIntervalSeconds: number;
  /** --master: the masters this slave announces to (empty: none). */
  masters: string[];
  /** --master-lease: null = only the window a master tells; 0 = leases off */
  masterLeaseSeconds: number | null;
  clusterToken: string | null;
  advertiseUrl: string | null;
  logparserVersion: LogParserVersion;
  /** null = the default (spiderplane-run, else nobody). */
  runAs: string | null;
  spiderEnv: SpiderEnvConfig;
  insecureNoAuth: boolean;
  /** --forkserver (and not --no-forkserver): Scrapy jobs start from a warm forkserver. */
  forkserver: boolean;
  /** --label NAME=VALUE pairs, announced to the master for service placement. */
  labels: Record<string, string>;
}

/** --label values (['region=eu', 'tier=a'], an item may hold several separated by commas) as an object; a malformed pair is an OptionError. */
export function parseLabels(items: readonly string[]): Record<string, string> {
  try {
    return parseLabelList(items.join(','));
  } catch (e) {
    throw new OptionError(`--label: ${(e as Error).message}`);
  }
}

const MIB = 1024 * 1024;

export function loadSlaveConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): SlaveConfig {
  const v = parseOptions(SLAVE_OPTIONS, argv, env);
  const config = slaveConfig(v);
  const problem = exposureProblem(config);
  if (problem) throw new OptionError(problem);
  return config;
}

/**
 * A slave runs whatever it is sent: listening beyond loopback with no authentication is remote code
 * execution for anyone on that network. Why such a config is refused (null when it is fine).
 */
export function exposureProblem(c: Pick<SlaveConfig, 'bind' | 'username' | 'password' | 'clusterToken' | 'insecureNoAuth'>): string | null {
  if (isLoopbackBind(c.bind) || c.insecureNoAuth) return null;
  if ((c.username !== null && c.password !== null) || c.clusterToken !== null) return null;
  return `refusing to listen on ${c.bind} without authentication: anyone who can reach this port could deploy and run code on this machine.\n` +
    'Set --cluster-token (the token of your spiderplane master; SPIDERPLANE_CLUSTER_TOKEN), or --username and --password (HTTP basic auth, as in Scrapyd; ' +
    'SPIDERPLANE_USERNAME/SPIDERPLANE_PASSWORD), or listen on 127.0.0.1 only (--bind 127.0.0.1). ' +
    '--insecure-no-auth starts it anyway, for a network you fully trust.';
}

/** Builds a full config from partial values (used by tests and the master's --local-slave). */
export function slaveConfig(v: Record<string, unknown>): SlaveConfig {
  const { o, str, list } = withDefaults(SLAVE_OPTIONS, v);
  let spiderEnv: SpiderEnvConfig;
  try {
    spiderEnv = parseSpiderEnvOptions(list('spider_env'), list('spider_env_pass'));
  } catch (e) {
    if (e instanceof SpiderEnvError) throw new OptionError(e.message);
    throw e;
  }
  return {
    bind: String(o.bind),
    port: Number(o.port),
    dataDir: resolve(String(o.data_dir)),
    maxProc: Number(o.max_proc),
    maxProcPerCpu: Number(o.max_proc_per_cpu),
    python: str('python'),
    username: str('username'),
    password: str('password'),
    nodeName: str('node_name') ?? hostname(),
    finishedToKeep: Number(o.finished_to_keep),
    historyToKeep: Math.max(Number(o.history_to_keep), Number(o.finished_to_keep)),
    jobsToKeep: Number(o.jobs_to_keep),
    maxUploadBytes: Math.floor(Number(o.max_upload_mb) * MIB),
    maxUnzippedBytes: Math.floor(Number(o.max_unzipped_mb) * MIB),
    maxZipEntries: Number(o.max_zip_entries),
    cancelGraceSeconds: Number(o.cancel_grace),
    maxRuntimeSeconds: Number(o.max_runtime),
    maxMemoryMiB: Number(o.max_memory),
    nice: Math.min(19, Number(o.nice)),
    onShutdown: o.on_shutdown === 'leave' ? 'leave' : 'stop',
    orphans: o.orphans === 'kill' ? 'kill' : 'adopt',
    metricsIntervalSeconds: Number(o.metrics_interval),
    masters: parseMasterUrls(str('master')),
    masterLeaseSeconds: o.master_lease === null || o.master_lease === undefined ? null : Number(o.master_lease),
    clusterToken: str('cluster_token'),
    advertiseUrl: str('advertise_url'),
    logparserVersion: o.logparser_version === '0.8.2' ? '0.8.2' : '0.8.4',
    runAs: str('run_as'),
    spiderEnv,
    insecureNoAuth: o.insecure_no_auth === true,
    forkserver: o.forkserver === true && o.no_forkserver !== true,
    labels: parseLabels(list('label')),
  };
}

/** `--master URL1,URL2,…`: each an http(s) URL, no duplicates. */
export function parseMasterUrls(value: string | null): string[] {
  if (value === null) return [];
  const urls = value.split(',').map((u) => u.trim()).filter((u) => u !== '');
  for (const u of urls) {
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      throw new Error(`--master: '${u}' is not a URL (give http://HOST:PORT, several separated by commas)`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error(`--master: '${u}' must be an http:// or https:// URL`);
  }
  return [...new Set(urls.map((u) => u.replace(/\/+$/, '')))];
}

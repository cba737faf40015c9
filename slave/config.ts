import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { parseOptions, withDefaults, type OptionSpec } from '../common/options.ts';

export const SLAVE_OPTIONS: readonly OptionSpec[] = [
  { flag: 'bind', env: 'SPIDERPLANE_SLAVE_BIND', type: 'string', default: '127.0.0.1', help: 'address to listen on', aliases: ['bind_address'] },
  { flag: 'port', env: 'SPIDERPLANE_SLAVE_PORT', type: 'int', default: 6800, min: 0, help: 'HTTP port (0 = any free port)', aliases: ['http_port'] },
  { flag: 'data-dir', env: 'SPIDERPLANE_SLAVE_DATA_DIR', type: 'string', default: './data/slave', help: 'folder for the database, packages, logs and items' },
  { flag: 'max-proc', env: 'SPIDERPLANE_MAX_PROC', type: 'int', default: 0, min: 0, help: 'most spiders running at once (0 = cpus x max-proc-per-cpu)' },
  { flag: 'max-proc-per-cpu', env: 'SPIDERPLANE_MAX_PROC_PER_CPU', type: 'int', default: 4, min: 1, help: 'used when max-proc is 0' },
  { flag: 'python', env: 'SPIDERPLANE_PYTHON', type: 'string', default: null, help: 'Python interpreter for Scrapy eggs (default: first of /usr/bin/python3, python3 that imports scrapy)' },
  { flag: 'username', env: 'SPIDERPLANE_USERNAME', type: 'string', default: null, help: 'HTTP basic auth user (with --password)' },
  { flag: 'password', env: 'SPIDERPLANE_PASSWORD', type: 'string', default: null, help: 'HTTP basic auth password' },
  { flag: 'node-name', env: 'SPIDERPLANE_NODE_NAME', type: 'string', default: null, help: 'name reported as node_name (default: the hostname)' },
  { flag: 'finished-to-keep', env: 'SPIDERPLANE_FINISHED_TO_KEEP', type: 'int', default: 100, min: 1, help: 'newest finished jobs listed by listjobs.json and /jobs (Scrapyd\'s setting)' },
  { flag: 'history-to-keep', env: 'SPIDERPLANE_HISTORY_TO_KEEP', type: 'int', default: 100000, min: 1, help: 'finished job records kept in the database (/jobs.json, stats, errors); never fewer than finished-to-keep; the oldest beyond it are deleted in batches every 10 s' },
  { flag: 'jobs-to-keep', env: 'SPIDERPLANE_JOBS_TO_KEEP', type: 'int', default: 5, min: 1, help: 'log and items files kept per spider' },
  { flag: 'max-upload-mb', env: 'SPIDERPLANE_MAX_UPLOAD_MB', type: 'number', default: 200, min: 0.001, help: 'largest package upload accepted, in MiB' },
  { flag: 'max-unzipped-mb', env: 'SPIDERPLANE_MAX_UNZIPPED_MB', type: 'number', default: 1024, min: 0.001, help: 'largest total uncompressed size of a package, in MiB' },
  { flag: 'max-zip-entries', env: 'SPIDERPLANE_MAX_ZIP_ENTRIES', type: 'int', default: 20000, min: 1, help: 'most files in a package' },
  { flag: 'cancel-grace', env: 'SPIDERPLANE_CANCEL_GRACE', type: 'number', default: 30, min: 0.1, help: 'seconds between the escalation steps of a cancel: INT, then TERM, then KILL' },
  { flag: 'on-shutdown', env: 'SPIDERPLANE_ON_SHUTDOWN', type: 'string', default: 'stop', choices: ['stop', 'leave'], help: "on SIGTERM/SIGINT: 'stop' running spiders gracefully, or 'leave' them running to be re-adopted at the next start" },
  { flag: 'orphans', env: 'SPIDERPLANE_ORPHANS', type: 'string', default: 'adopt', choices: ['adopt', 'kill'], help: "spider processes that outlived a crashed slave: 'adopt' and supervise them, or 'kill' them" },
  { flag: 'metrics-interval', env: 'SPIDERPLANE_METRICS_INTERVAL', type: 'number', default: 5, min: 1, help: 'seconds between system metric samples' },
  { flag: 'master', env: 'SPIDERPLANE_MASTER', type: 'string', default: null, help: 'URL of a spiderplane master to announce this slave to' },
  { flag: 'cluster-token', env: 'SPIDERPLANE_CLUSTER_TOKEN', type: 'string', default: null, help: 'shared secret between master and slaves (also accepted as a Bearer token on this API)' },
  { flag: 'advertise-url', env: 'SPIDERPLANE_ADVERTISE_URL', type: 'string', default: null, help: 'URL the master should use to reach this slave (default http://BIND:PORT)' },
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
  onShutdown: 'stop' | 'leave';
  orphans: 'adopt' | 'kill';
  metricsIntervalSeconds: number;
  master: string | null;
  clusterToken: string | null;
  advertiseUrl: string | null;
}

const MIB = 1024 * 1024;

export function loadSlaveConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): SlaveConfig {
  const v = parseOptions(SLAVE_OPTIONS, argv, env);
  return slaveConfig(v);
}

/** Builds a full config from partial values (used by tests and the master's --local-slave). */
export function slaveConfig(v: Record<string, unknown>): SlaveConfig {
  const { o, str } = withDefaults(SLAVE_OPTIONS, v);
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
    onShutdown: o.on_shutdown === 'leave' ? 'leave' : 'stop',
    orphans: o.orphans === 'kill' ? 'kill' : 'adopt',
    metricsIntervalSeconds: Number(o.metrics_interval),
    master: str('master'),
    clusterToken: str('cluster_token'),
    advertiseUrl: str('advertise_url'),
  };
}

// Types shared by the master and the slave: what travels between them over HTTP.
import type { LagFigures } from './event_loop_lag.ts';

export type JobState = 'pending' | 'running' | 'finished';

/**
 * How a finished job ended. 'succeeded': exit status 0 and nothing wrong in its log;
 * 'finished_with_errors': exit status 0, but it logged errors, Scrapy closed it for another reason
 * than 'finished', or it scraped no items where the spider's previous run scraped some (the note
 * says which); 'lost': the slave died while it ran and the process was gone on restart;
 * 'unknown': a re-adopted orphan whose exit status could not be observed; 'timeout' / 'memory':
 * stopped by the slave for running past its max_runtime / using more than its max_memory.
 */
export type JobOutcome = 'succeeded' | 'finished_with_errors' | 'failed' | 'cancelled' | 'lost' | 'unknown' | 'timeout' | 'memory';

/** Outcomes that mean a limit stopped the run (failures for alert rules and retries). */
export const LIMIT_OUTCOMES: readonly JobOutcome[] = ['timeout', 'memory'];

/** The limits a run runs under (null = none). max_runtime in seconds, max_memory in MiB of the whole process tree's RSS. */
export interface RunLimits {
  max_runtime: number | null;
  max_memory: number | null;
  /** nice level 0..19 the spider's process starts with */
  nice: number | null;
}

/** Why the slave stopped a run: which limit, its value, and the figure the run reached. */
export interface LimitHit {
  kind: 'timeout' | 'memory';
  /** the limit: seconds for timeout, MiB for memory */
  limit: number;
  /** what the run reached when it was stopped: seconds run, or MiB of RSS */
  reached: number;
  unit: 's' | 'MiB';
}

export type PackageKind = 'scrapy-egg' | 'generic';

/** One job as the slave's /jobs.json extension reports it (a superset of listjobs.json). */
export interface SlaveJob {
  id: string;
  project: string;
  spider: string;
  /** The version asked for with _version, or null for "newest at launch". */
  version: string | null;
  /** The version the process actually ran (set once launched). */
  run_version: string | null;
  state: JobState;
  priority: number;
  args: Record<string, string>;
  settings: Record<string, string>;
  pid: number | null;
  created_time: string;
  start_time: string | null;
  end_time: string | null;
  /** start_time and end_time as exact epoch seconds (UTC, microseconds): no timezone to guess. */
  start_timestamp: number | null;
  end_timestamp: number | null;
  duration_seconds: number | null;
  exit_code: number | null;
  signal: string | null;
  outcome: JobOutcome | null;
  items_count: number | null;
  error_count: number | null;
  log_url: string | null;
  items_url: string | null;
  note: string | null;
  /** the limits the job ran under (after the slave's defaults were applied; absent on older slaves) */
  limits?: RunLimits;
  /** set when a limit stopped the job (outcome 'timeout' or 'memory') */
  limit_hit?: LimitHit | null;
}

export interface DiskUsage {
  mount: string;
  size_bytes: number;
  used_bytes: number;
  used_percent: number;
}

/** The slave's /metrics.json payload (before the Scrapyd envelope's status/node_name). */
export interface NodeMetrics {
  time: number;              // epoch seconds on the slave (informational only)
  cpu_percent: number | null;
  cpu_count: number;
  load: [number, number, number];
  memory: { total_bytes: number; used_bytes: number; available_bytes: number; used_percent: number };
  disks: DiskUsage[];
  network: { rx_bytes_per_sec: number | null; tx_bytes_per_sec: number | null };
  uptime_seconds: number;
  daemon_uptime_seconds: number;
  running: number;
  pending: number;
  max_proc: number;
  /** The slave daemon's own event-loop lag over the last minute (absent from older slaves). */
  event_loop_lag?: LagFigures;
}

export interface SpiderError {
  job: string;
  project: string;
  spider: string;
  time: string;
  level: 'ERROR' | 'CRITICAL';
  logger: string;
  message: string;
  traceback: string | null;
}

// The JSON that LogParser (my8100/logparser) writes into Scrapyd's logs_dir, key for key, for the
// versions ScrapydWeb pins: 0.8.2 (ScrapydWeb 1.4/1.5, `logparser==0.8.2`) and 0.8.4 (ScrapydWeb
// 1.6, which refuses stats unless `logparser_version` equals its installed LogParser, >= 0.8.4).
//   GET /logs/stats.json                      -> logParserStatsFile()
//   GET /logs/{project}/{spider}/{job}.json   -> ScrapyLogParser#stats() (slave/logs/scrapy_log_parser.ts)
//
// What changed from 0.8.2 to 0.8.4 (logparser/common.py, scrapylogparser.py):
// - latest_matches: latest_scrape/latest_item are the last "Scraped from <" line *and the item
//   printed right after it* (multi-line items included), added after latest_stat; 0.8.2 took the
//   last "Scraped from" line and, separately, the last line that looks like `{...}`.
// - telnet_username/telnet_password are found in any line (Scrapy >= 2 prints the overridden
//   settings on lines of their own), not only on the "Overridden settings:" line.
// - shutdown_reason also reads "Received SIGINT" / "Received SIGBREAK".
// - crawler_stats: None becomes null and a parse error is kept as a string (we always did both).
// Everything else (keys, their order, stats.json) is unchanged.
//
// Pure: no I/O.

import { extname } from 'node:path';

/** What ScrapydWeb 1.6 wants. */
export const LOGPARSER_VERSION = '0.8.4';
/** The versions whose JSON we can write; ScrapydWeb 1.4/1.5 want 0.8.2. */
export const LOGPARSER_VERSIONS = ['0.8.2', '0.8.4'] as const;
export type LogParserVersion = (typeof LOGPARSER_VERSIONS)[number];

export function isLogParserVersion(v: string): v is LogParserVersion {
  return (LOGPARSER_VERSIONS as readonly string[]).includes(v);
}

/** LogParser's "not available" marker. */
export const NA = 'N/A';

export type LogCategoryKey =
  | 'critical_logs'
  | 'error_logs'
  | 'warning_logs'
  | 'redirect_logs'
  | 'retry_logs'
  | 'ignore_logs';

export interface LogCategory {
  /** Number of matching log records (overridden by the dumped Scrapy stats when those are > 0). */
  count: number;
  /** The newest matching records (first line plus continuation lines), oldest first, capped. */
  details: string[];
}

export type LogCategories = Record<LogCategoryKey, LogCategory>;

/** Each value is '' when nothing matched. */
export interface LatestMatches {
  /** e.g. '2.8.0' from "Scrapy 2.8.0 started" (first match). */
  scrapy_version: string;
  /** e.g. '127.0.0.1:6023' (first match). */
  telnet_console: string;
  /** From "Overridden settings: {... 'TELNETCONSOLE_USERNAME': 'x'}" (first match). */
  telnet_username: string;
  /** From "Telnet Password: abc" or the overridden settings (first match). */
  telnet_password: string;
  /** Whole line, first match. */
  resuming_crawl: string;
  /** Whole lines, last match. */
  latest_offsite: string;
  latest_duplicate: string;
  latest_crawl: string;
  latest_scrape: string;
  /** The last line that starts with '{' and contains '}' (the item printed after "Scraped from"). */
  latest_item: string;
  latest_stat: string;
}

/** [time, pages, pages_per_min, items, items_per_min] from each "Crawled N pages (at ...)" line. */
export type DatasRow = [string, number, number, number, number];

export type CrawlerStatsValue =
  | string
  | number
  | boolean
  | null
  | CrawlerStatsValue[]
  | { [key: string]: CrawlerStatsValue };

/**
 * `{}` until "Dumping Scrapy stats:" is seen; then
 * `{source: 'log', last_update_time, last_update_timestamp, ...stats keys sorted}` where
 * datetime values are kept as their repr strings ("datetime.datetime(2026, 11, 23, 4, 22, 30, 1)").
 */
export type CrawlerStats = { [key: string]: CrawlerStatsValue };

/** Exactly the object LogParser 0.8.2 and 0.8.4 write (only latest_matches differs: LATEST_MATCHES_ORDER) to logs/{project}/{spider}/{job}.json. */
export interface LogParserJobStats {
  log_path: string;
  json_path: string;
  json_url: string;
  /** Log size in bytes when parsed. */
  size: number;
  /** Bytes parsed so far (LogParser's read offset). */
  position: number;
  status: 'ok';
  /** The head text while it has fewer than 100 non-blank lines, then the number 100. */
  _head: string | number;
  head: string;
  tail: string;
  first_log_time: string;
  latest_log_time: string;
  /** Python str(timedelta), e.g. '0:01:23' or '2 days, 3:04:05'; 'N/A' without timestamps. */
  runtime: string;
  first_log_timestamp: number;
  latest_log_timestamp: number;
  datas: DatasRow[];
  /** null when unknown (no logstats line and no dumped stats). */
  pages: number | null;
  items: number | null;
  latest_matches: LatestMatches;
  latest_crawl_timestamp: number;
  latest_scrape_timestamp: number;
  log_categories: LogCategories;
  /** 'Received SIGTERM' | 'Received SIGTERM twice' | 'N/A' */
  shutdown_reason: string;
  /** From the dumped stats (or "Spider closed (reason)"); 'N/A' while the spider runs. */
  finish_reason: string;
  crawler_stats: CrawlerStats;
  last_update_time: string;
  last_update_timestamp: number;
  logparser_version: string;
  /** Filled by LogParser via telnet on Scrapy <= 1.5.1 only; always present, here always {}. */
  crawler_engine: CrawlerStats;
}

/** The per-job entry of stats.json (LogParser's SIMPLIFIED_KEYS minus `_head`). */
export type LogParserStatsEntry = Pick<
  LogParserJobStats,
  | 'log_path'
  | 'json_path'
  | 'json_url'
  | 'size'
  | 'position'
  | 'status'
  | 'pages'
  | 'items'
  | 'first_log_time'
  | 'latest_log_time'
  | 'runtime'
  | 'shutdown_reason'
  | 'finish_reason'
  | 'last_update_time'
>;

export interface LogParserSettings {
  scrapyd_server: string;
  scrapyd_logs_dir: string;
  parse_round_interval: number;
  enable_telnet: boolean;
  override_telnet_console_host: string;
  log_encoding: string;
  log_extensions: string[];
  log_head_lines: number;
  log_tail_lines: number;
  log_categories_limit: number;
  jobs_to_keep: number;
  chunk_size: number;
  delete_existing_json_files_at_startup: boolean;
  keep_data_in_memory: boolean;
  verbose: boolean;
  main_pid: number;
}

/** Exactly the object LogParser 0.8.2 and 0.8.4 write to logs/stats.json. */
export interface LogParserStatsFile {
  status: 'ok';
  /** datas[project][spider][job] where job is the log file name without its extension. */
  datas: Record<string, Record<string, Record<string, LogParserStatsEntry>>>;
  settings_py: string;
  settings: LogParserSettings;
  last_update_timestamp: number;
  last_update_time: string;
  logparser_version: string;
}


/** latest_matches keys in the order each LogParser version writes them. */
export const LATEST_MATCHES_ORDER: Record<LogParserVersion, ReadonlyArray<keyof LatestMatches>> = {
  '0.8.2': ['scrapy_version', 'telnet_console', 'telnet_username', 'telnet_password', 'resuming_crawl', 'latest_offsite', 'latest_duplicate', 'latest_crawl', 'latest_scrape', 'latest_item', 'latest_stat'],
  '0.8.4': ['scrapy_version', 'telnet_console', 'telnet_username', 'telnet_password', 'resuming_crawl', 'latest_offsite', 'latest_duplicate', 'latest_crawl', 'latest_stat', 'latest_scrape', 'latest_item'],
};

/** The matches as an object whose key order is that version's. */
export function orderedMatches(m: LatestMatches, version: LogParserVersion): LatestMatches {
  const out = {} as LatestMatches;
  for (const k of LATEST_MATCHES_ORDER[version]) out[k] = m[k];
  return out;
}

// ---------------------------------------------------------------------------------------------
// Times as Python prints them.

const pad2 = (n: number): string => String(n).padStart(2, '0');

/** Local time as 'YYYY-MM-DD HH:MM:SS' (Python's datetime.fromtimestamp(...).strftime). */
export function formatLocalTime(d: Date): string {
  return (
    `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`
  );
}

function timeParts(s: string): [number, number, number, number, number, number] {
  return [+s.slice(0, 4), +s.slice(5, 7) - 1, +s.slice(8, 10), +s.slice(11, 13), +s.slice(14, 16), +s.slice(17, 19)];
}

/** Naive local 'YYYY-MM-DD HH:MM:SS' -> epoch seconds, like Python's time.mktime(). */
export function localTimestamp(s: string): number {
  const [y, mo, d, h, mi, se] = timeParts(s);
  return Math.floor(new Date(y, mo, d, h, mi, se).getTime() / 1000);
}

/** Python str(end - start) for naive datetimes (wall-clock difference, DST-agnostic). */
export function pythonTimedelta(start: string, end: string): string {
  const total = (Date.UTC(...timeParts(end)) - Date.UTC(...timeParts(start))) / 1000;
  const days = Math.floor(total / 86_400);
  const rem = total - days * 86_400;
  const hms = `${Math.floor(rem / 3600)}:${pad2(Math.floor((rem % 3600) / 60))}:${pad2(rem % 60)}`;
  return days === 0 ? hms : `${days} day${Math.abs(days) === 1 ? '' : 's'}, ${hms}`;
}


/** Python's os.path.splitext on the file name: 'abc.log' -> 'abc', 'a.b.txt' -> 'a.b'. LogParser's job key. */
export function jobKeyFromLogFile(fileName: string): string {
  const ext = extname(fileName);
  return ext ? fileName.slice(0, -ext.length) : fileName;
}


/** LogParser's get_ordered_dict(source='log') with the dump line's time as last_update_*. */
export function orderedCrawlerStats(stats: { [key: string]: CrawlerStatsValue }, dumpTime: string): CrawlerStats {
  const out: CrawlerStats = { source: 'log', last_update_time: dumpTime, last_update_timestamp: localTimestamp(dumpTime) };
  for (const k of Object.keys(stats).sort()) if (!(k in out)) out[k] = stats[k]!;
  return out;
}

// ---------------------------------------------------------------------------------------------
// stats.json

export interface StatsFileOptions {
  scrapydServer?: string;
  logsDir?: string;
  logparserVersion?: LogParserVersion;
  now?: () => Date;
}

/** LogParser's simplify_data() minus `_head`: what stats.json holds per job. */
export function simplifyJobStats(s: LogParserJobStats): LogParserStatsEntry {
  return {
    log_path: s.log_path,
    json_path: s.json_path,
    json_url: s.json_url,
    size: s.size,
    position: s.position,
    status: s.status,
    pages: s.pages,
    items: s.items,
    first_log_time: s.first_log_time,
    latest_log_time: s.latest_log_time,
    runtime: s.runtime,
    shutdown_reason: s.shutdown_reason,
    finish_reason: s.finish_reason,
    last_update_time: s.last_update_time,
  };
}

/**
 * LogParser's stats.json. `job` must be the key LogParser would use: the log file name without
 * its extension (see jobKeyFromLogFile), which for Scrapyd logs is the job id.
 */
export function logParserStatsFile(
  jobs: Array<{ project: string; spider: string; job: string; stats: LogParserJobStats }>,
  options: StatsFileOptions = {},
): LogParserStatsFile {
  const now = (options.now ?? (() => new Date()))();
  const nowTs = Math.floor(now.getTime() / 1000);
  const datas: LogParserStatsFile['datas'] = {};
  for (const { project, spider, job, stats } of jobs) {
    ((datas[project] ??= {})[spider] ??= {})[job] = simplifyJobStats(stats);
  }
  return {
    status: 'ok',
    datas,
    settings_py: 'spiderplane: slave/logs/logparser_json.ts',
    settings: {
      scrapyd_server: options.scrapydServer ?? '127.0.0.1:6800',
      scrapyd_logs_dir: options.logsDir ?? '',
      parse_round_interval: 0, // computed on request
      enable_telnet: false,
      override_telnet_console_host: '',
      log_encoding: 'utf-8',
      log_extensions: ['.log', '.txt'],
      log_head_lines: 100,
      log_tail_lines: 200,
      log_categories_limit: 10,
      jobs_to_keep: 100,
      chunk_size: 10_000_000,
      delete_existing_json_files_at_startup: false,
      keep_data_in_memory: false,
      verbose: false,
      main_pid: 0,
    },
    last_update_timestamp: nowTs,
    last_update_time: formatLocalTime(new Date(nowTs * 1000)),
    logparser_version: options.logparserVersion ?? LOGPARSER_VERSION,
  };
}


/**
 * Stats kept from another LogParser version, as `version` writes them: its latest_matches key
 * order and version string (the matches themselves are what was found then).
 */
export function reshapeJobStats(s: LogParserJobStats, version: LogParserVersion): LogParserJobStats {
  if (s.logparser_version === version) return s;
  return { ...s, latest_matches: orderedMatches(s.latest_matches, version), logparser_version: version };
}

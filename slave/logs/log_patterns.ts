// Limits and patterns of the Scrapy log parser: LogParser's own (ported from logparser/common.py;
// Python `.` excludes only \n, hence [^\n]) and those of the error extraction.

import type { LatestMatches, LogCategoryKey } from './logparser_json.ts';

// Limits that keep memory bounded (LogParser itself has none of these except the category cap).

export const MAX_LINE_CHARS = 16_384; // longer lines are truncated (the rest is skipped until newline)
export const MAX_TAIL_LINES_TOTAL = 1_000; // tail keeps N non-blank lines; this also bounds blank ones
export const MAX_RECORD_LINES = 300; // continuation lines kept per category detail / error traceback
export const MAX_RECORD_CHARS = 64 * 1024;
export const MAX_DATAS_ROWS = 10_000; // beyond this the chart series is downsampled 2:1
export const MAX_STATS_DUMP_CHARS = 1024 * 1024;
export const MAX_ERROR_RECORDS = 200;
export const CRASH_HEADER_WINDOW = 8; // lines after a Node "file.js:12" header that may hold the error



export const DT = String.raw`\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}`;
export const TS_LINE_RE = new RegExp(`^${DT} `);
// A new log record: LogParser ends a category detail at the next line like this.
export const RECORD_BOUNDARY_RE = new RegExp(`^${DT} [^\\n]+?(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)`);
export const DATAS_RE = new RegExp(
  `^(${DT}) [^\\n]+?Crawled (\\d+) pages \\(at (\\d+) pages/min\\), scraped (\\d+) items \\(at (\\d+) items/min\\)`,
);
// [key, needle for a cheap includes() pre-check, full pattern]
export const CATEGORY_PATTERNS: Array<[LogCategoryKey, string, RegExp]> = [
  ['critical_logs', '] CRITICAL:', new RegExp(`^${DT} [^\\n]+?\\] CRITICAL:`)],
  ['error_logs', '] ERROR:', new RegExp(`^${DT} [^\\n]+?\\] ERROR:`)],
  ['warning_logs', '] WARNING:', new RegExp(`^${DT} [^\\n]+?\\] WARNING:`)],
  ['redirect_logs', ': Redirecting (', new RegExp(`^${DT} [^\\n]+?: Redirecting \\(`)],
  ['retry_logs', 'etrying <', new RegExp(`^${DT} [^\\n]+? [Rr]etrying <`)],
  ['ignore_logs', ': Ignoring response <', new RegExp(`^${DT} [^\\n]+?: Ignoring response <`)],
];
export const CATEGORY_KEYS: LogCategoryKey[] = CATEGORY_PATTERNS.map(([k]) => k);
// Dumped-stats keys that replace the counted numbers when > 0 (STATS_DUMPED_CATEGORIES_DICT).
export const STATS_COUNT_KEYS: Array<[LogCategoryKey, string]> = [
  ['critical_logs', 'log_count/CRITICAL'],
  ['error_logs', 'log_count/ERROR'],
  ['warning_logs', 'log_count/WARNING'],
  ['retry_logs', 'retry/count'],
  ['ignore_logs', 'httperror/response_ignored_count'],
];

export type MatchKey = keyof LatestMatches;
export const FIRST_MATCH_KEYS: ReadonlySet<MatchKey> = new Set<MatchKey>([
  'scrapy_version',
  'telnet_console',
  'telnet_username',
  'telnet_password',
  'resuming_crawl',
]);
export const MATCH_KEYS: MatchKey[] = [
  'scrapy_version',
  'telnet_console',
  'telnet_username',
  'telnet_password',
  'resuming_crawl',
  'latest_offsite',
  'latest_duplicate',
  'latest_crawl',
  'latest_scrape',
  'latest_item',
  'latest_stat',
];
// [needle for a cheap includes() pre-check, full pattern]
export const MATCH_PATTERNS: Record<MatchKey, [string, RegExp]> = {
  scrapy_version: [' started', new RegExp(`^${DT} .+?Scrapy \\d+\\.\\d+\\.\\d+ started`)],
  telnet_console: ['Telnet console', new RegExp(`^${DT} .+?Telnet console listening on`)],
  telnet_username: ['TELNETCONSOLE_USERNAME', new RegExp(`^${DT} .+?Overridden settings:.+TELNETCONSOLE_USERNAME`)],
  // Python alternation precedence: the second branch may match anywhere in the line.
  telnet_password: ['Telnet', new RegExp(`^${DT} .+?Overridden settings:.+TELNETCONSOLE_PASSWORD|Telnet Password: .+`)],
  resuming_crawl: ['Resuming crawl', new RegExp(`^${DT} .+?Resuming crawl`)],
  latest_offsite: ['Filtered offsite', new RegExp(`^${DT} .+?Filtered offsite`)],
  latest_duplicate: ['Filtered duplicate', new RegExp(`^${DT} .+?Filtered duplicate`)],
  latest_crawl: ['Crawled (', new RegExp(`^${DT} .+?Crawled \\(\\d+\\)`)],
  latest_scrape: ['Scraped from <', new RegExp(`^${DT} .+?Scraped from <`)],
  latest_item: ['{', /^\{.+\}/],
  latest_stat: [' pages (at', new RegExp(`^${DT} .+?Crawled \\d+ pages \\(at`)],
};
export const SIGTERM_RE = new RegExp(`^${DT} .+?: (Received SIGTERM( twice)?),`);
export const STATS_DUMP_RE = new RegExp(`^(${DT}) [^\\n]+?Dumping Scrapy stats:`);
export const SPIDER_CLOSED_RE = new RegExp(`^${DT} [^\\n]+?INFO: Spider closed(?: \\((.*)\\))?`);

// Error extraction (not LogParser): Scrapy's LOG_FORMAT '%(asctime)s [%(name)s] %(levelname)s: %(message)s'.
export const SCRAPY_RECORD_RE = new RegExp(`^(${DT}) \\[([^\\]]*)\\] (DEBUG|INFO|WARNING|ERROR|CRITICAL): ?(.*)$`);
export const PY_TB_START_RE = /^\s*(?:\+\s*)?(?:Exception Group )?Traceback \(most recent call last\):\s*$/;
export const PY_CHAIN_RE =
  /^(?:During handling of the above exception, another exception occurred:|The above exception was the direct cause of the following exception:)\s*$/;
export const JS_AT_RE = /^\s+at \S/;
export const JS_ERROR_LINE_RE =
  /^(?:Uncaught\s+)?\[?(?:[A-Z][\w$]*(?:Error|Exception)|Error|UnhandledPromiseRejection)(?: \[[A-Z0-9_]+\])?(?::|\]|$)/;
// Node prints "file:line" (then source, caret, blank) before an uncaught error.
export const NODE_CRASH_HEADER_RE = /^(?:node:internal\/\S+|(?:file:\/\/)?\/\S+|[A-Za-z]:\\\S+):\d+$/;
// Optional leading timestamp of common plain formats, e.g. "2024-01-02T03:04:05.678Z " or "[2024-01-02 03:04:05] ".
export const PLAIN_TS = String.raw`(?:\[?\d{4}-\d{2}-\d{2}[T ][\d:.,]+(?:Z|[+-]\d{2}:?\d{2})?\]?\s+)?`;
export const PLAIN_LEVEL_RES: RegExp[] = [
  new RegExp(`^\\s*${PLAIN_TS}\\[(ERROR|CRITICAL|FATAL)\\]`, 'i'),
  new RegExp(`^${PLAIN_TS}(ERROR|CRITICAL|FATAL)(?::|\\s+-\\s|\\s+(?=\\S))`), // 'ERROR: x', 'ERROR - x', 'ERROR x'
  /(?:^|\s)level=["']?(error|err|fatal|critical|crit|panic)["']?(?=\s|$)/i,
  /^\{.*"level"\s*:\s*(?:"(error|fatal|critical)"|(50|60)\b)/i, // pino/bunyan JSON lines
];


// LogParser 0.8.4's changed patterns (0.8.2's are above).
export const SHUTDOWN_RE_084 = new RegExp(`^${DT} .+?: (Received SIG(?:BREAK|INT|TERM)( twice)?),`);
export const TELNET_USERNAME_RE_084 = /TELNETCONSOLE_USERNAME\W:.+/;
export const TELNET_PASSWORD_RE_084 = /TELNETCONSOLE_PASSWORD\W:.+|Telnet Password: .+/;
// LATEST_SCRAPE_ITEM_PATTERN: a "Scraped from <" record whose next line starts the item.
export const SCRAPED_FROM_RE = new RegExp(`^${DT} [^\\n]+?: Scraped from <[^\\n]+`);

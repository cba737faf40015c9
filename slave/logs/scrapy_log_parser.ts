// LogParser-compatible (my8100/logparser 0.8.2) statistics for Scrapy logs, computed incrementally.
//
// ScrapydWeb reads two files that LogParser writes into Scrapyd's logs_dir:
//   GET /logs/stats.json                      -> logParserStatsFile()
//   GET /logs/{project}/{spider}/{job}.json   -> ScrapyLogParser#stats()
// and refuses both unless `logparser_version` equals the LogParser version it pins ('0.8.2' for
// ScrapydWeb 1.4 and 1.5). The shapes below mirror what LogParser 0.8.2 writes, key for key.
//
// The parser does no I/O: feed() it text in any chunking. It keeps only what the output needs
// (head/tail lines, the latest matches, at most LOG_CATEGORIES_LIMIT details per category, a
// downsampled `datas` series, the newest error records), so memory stays bounded for huge logs.
//
// It also extracts error records (SpiderErrorRecord) from Scrapy logs and from logs of
// non-Scrapy processes (Python tracebacks, Node/JS stacks, "[ERROR]"/"level=error" lines).

import { basename, dirname, extname, join } from 'node:path';

// ---------------------------------------------------------------------------------------------
// Public types: the JSON shapes.

/** LogParser version that ScrapydWeb 1.4.0/1.5.0 pin (`logparser==0.8.2`) and compare for equality. */
export const LOGPARSER_VERSION = '0.8.2';
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

/** Exactly the object LogParser 0.8.2 writes to logs/{project}/{spider}/{job}.json. */
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

/** Exactly the object LogParser 0.8.2 writes to logs/stats.json. */
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

export interface SpiderErrorRecord {
  time: string;
  level: 'ERROR' | 'CRITICAL';
  logger: string;
  message: string;
  traceback: string | null;
}

export interface LogParserOptions {
  /** host:port put into json_url, like LogParser's SCRAPYD_SERVER. Default '127.0.0.1:6800'. */
  scrapydServer?: string;
  /** Version string to report; ScrapydWeb requires an exact match with its pinned LogParser. */
  logparserVersion?: string;
  /** LogParser's LOG_HEAD_LINES / LOG_TAIL_LINES / LOG_CATEGORIES_LIMIT (100 / 200 / 10). */
  headLines?: number;
  tailLines?: number;
  categoriesLimit?: number;
  /** Clock for last_update_time and for the time of errors found in plain logs. */
  now?: () => Date;
}

// ---------------------------------------------------------------------------------------------
// Limits that keep memory bounded (LogParser itself has none of these except the category cap).

const MAX_LINE_CHARS = 16_384; // longer lines are truncated (the rest is skipped until newline)
const MAX_TAIL_LINES_TOTAL = 1_000; // tail keeps N non-blank lines; this also bounds blank ones
const MAX_RECORD_LINES = 300; // continuation lines kept per category detail / error traceback
const MAX_RECORD_CHARS = 64 * 1024;
const MAX_DATAS_ROWS = 10_000; // beyond this the chart series is downsampled 2:1
const MAX_STATS_DUMP_CHARS = 1024 * 1024;
const MAX_ERROR_RECORDS = 200;
const CRASH_HEADER_WINDOW = 8; // lines after a Node "file.js:12" header that may hold the error

// ---------------------------------------------------------------------------------------------
// Patterns (ported from logparser/common.py; Python `.` excludes only \n, hence [^\n]).

const DT = String.raw`\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}`;
const TS_LINE_RE = new RegExp(`^${DT} `);
// A new log record: LogParser ends a category detail at the next line like this.
const RECORD_BOUNDARY_RE = new RegExp(`^${DT} [^\\n]+?(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)`);
const DATAS_RE = new RegExp(
  `^(${DT}) [^\\n]+?Crawled (\\d+) pages \\(at (\\d+) pages/min\\), scraped (\\d+) items \\(at (\\d+) items/min\\)`,
);
// [key, needle for a cheap includes() pre-check, full pattern]
const CATEGORY_PATTERNS: Array<[LogCategoryKey, string, RegExp]> = [
  ['critical_logs', '] CRITICAL:', new RegExp(`^${DT} [^\\n]+?\\] CRITICAL:`)],
  ['error_logs', '] ERROR:', new RegExp(`^${DT} [^\\n]+?\\] ERROR:`)],
  ['warning_logs', '] WARNING:', new RegExp(`^${DT} [^\\n]+?\\] WARNING:`)],
  ['redirect_logs', ': Redirecting (', new RegExp(`^${DT} [^\\n]+?: Redirecting \\(`)],
  ['retry_logs', 'etrying <', new RegExp(`^${DT} [^\\n]+? [Rr]etrying <`)],
  ['ignore_logs', ': Ignoring response <', new RegExp(`^${DT} [^\\n]+?: Ignoring response <`)],
];
const CATEGORY_KEYS: LogCategoryKey[] = CATEGORY_PATTERNS.map(([k]) => k);
// Dumped-stats keys that replace the counted numbers when > 0 (STATS_DUMPED_CATEGORIES_DICT).
const STATS_COUNT_KEYS: Array<[LogCategoryKey, string]> = [
  ['critical_logs', 'log_count/CRITICAL'],
  ['error_logs', 'log_count/ERROR'],
  ['warning_logs', 'log_count/WARNING'],
  ['retry_logs', 'retry/count'],
  ['ignore_logs', 'httperror/response_ignored_count'],
];

type MatchKey = keyof LatestMatches;
const FIRST_MATCH_KEYS: ReadonlySet<MatchKey> = new Set<MatchKey>([
  'scrapy_version',
  'telnet_console',
  'telnet_username',
  'telnet_password',
  'resuming_crawl',
]);
const MATCH_KEYS: MatchKey[] = [
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
const MATCH_PATTERNS: Record<MatchKey, [string, RegExp]> = {
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
const SIGTERM_RE = new RegExp(`^${DT} .+?: (Received SIGTERM( twice)?),`);
const STATS_DUMP_RE = new RegExp(`^(${DT}) [^\\n]+?Dumping Scrapy stats:`);
const SPIDER_CLOSED_RE = new RegExp(`^${DT} [^\\n]+?INFO: Spider closed(?: \\((.*)\\))?`);

// Error extraction (not LogParser): Scrapy's LOG_FORMAT '%(asctime)s [%(name)s] %(levelname)s: %(message)s'.
const SCRAPY_RECORD_RE = new RegExp(`^(${DT}) \\[([^\\]]*)\\] (DEBUG|INFO|WARNING|ERROR|CRITICAL): ?(.*)$`);
const PY_TB_START_RE = /^\s*(?:\+\s*)?(?:Exception Group )?Traceback \(most recent call last\):\s*$/;
const PY_CHAIN_RE =
  /^(?:During handling of the above exception, another exception occurred:|The above exception was the direct cause of the following exception:)\s*$/;
const JS_AT_RE = /^\s+at \S/;
const JS_ERROR_LINE_RE =
  /^(?:Uncaught\s+)?\[?(?:[A-Z][\w$]*(?:Error|Exception)|Error|UnhandledPromiseRejection)(?: \[[A-Z0-9_]+\])?(?::|\]|$)/;
// Node prints "file:line" (then source, caret, blank) before an uncaught error.
const NODE_CRASH_HEADER_RE = /^(?:node:internal\/\S+|(?:file:\/\/)?\/\S+|[A-Za-z]:\\\S+):\d+$/;
// Optional leading timestamp of common plain formats, e.g. "2024-01-02T03:04:05.678Z " or "[2024-01-02 03:04:05] ".
const PLAIN_TS = String.raw`(?:\[?\d{4}-\d{2}-\d{2}[T ][\d:.,]+(?:Z|[+-]\d{2}:?\d{2})?\]?\s+)?`;
const PLAIN_LEVEL_RES: RegExp[] = [
  new RegExp(`^\\s*${PLAIN_TS}\\[(ERROR|CRITICAL|FATAL)\\]`, 'i'),
  new RegExp(`^${PLAIN_TS}(ERROR|CRITICAL|FATAL)(?::|\\s+-\\s|\\s+(?=\\S))`), // 'ERROR: x', 'ERROR - x', 'ERROR x'
  /(?:^|\s)level=["']?(error|err|fatal|critical|crit|panic)["']?(?=\s|$)/i,
  /^\{.*"level"\s*:\s*(?:"(error|fatal|critical)"|(50|60)\b)/i, // pino/bunyan JSON lines
];

// ---------------------------------------------------------------------------------------------
// Small helpers.

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
function localTimestamp(s: string): number {
  const [y, mo, d, h, mi, se] = timeParts(s);
  return Math.floor(new Date(y, mo, d, h, mi, se).getTime() / 1000);
}

/** Python str(end - start) for naive datetimes (wall-clock difference, DST-agnostic). */
function pythonTimedelta(start: string, end: string): string {
  const total = (Date.UTC(...timeParts(end)) - Date.UTC(...timeParts(start))) / 1000;
  const days = Math.floor(total / 86_400);
  const rem = total - days * 86_400;
  const hms = `${Math.floor(rem / 3600)}:${pad2(Math.floor((rem % 3600) / 60))}:${pad2(rem % 60)}`;
  return days === 0 ? hms : `${days} day${Math.abs(days) === 1 ? '' : 's'}, ${hms}`;
}

/**
 * Copies a string so it no longer references the (possibly huge) chunk it was sliced from;
 * V8 substrings keep their parent alive, which would defeat the memory bound for kept lines.
 */
function detach(s: string): string {
  return s.length < 13 ? s : Buffer.from(s, 'utf8').toString('utf8'); // V8 slices only from 13 chars
}

function joinLines(lines: string[]): string {
  return lines.length === 1 ? detach(lines[0]!) : lines.join('\n');
}

const isBlank = (s: string): boolean => s.trim() === '';

/** Python's os.path.splitext on the file name: 'abc.log' -> 'abc', 'a.b.txt' -> 'a.b'. LogParser's job key. */
export function jobKeyFromLogFile(fileName: string): string {
  const ext = extname(fileName);
  return ext ? fileName.slice(0, -ext.length) : fileName;
}

/** Fixed-capacity FIFO without Array#shift's O(n) cost. */
class Ring<T> {
  private buf: Array<T | undefined>;
  private start = 0;
  size = 0;
  constructor(private readonly capacity: number) {
    this.buf = new Array<T | undefined>(capacity);
  }
  push(v: T): T | undefined {
    let dropped: T | undefined;
    if (this.size === this.capacity) dropped = this.shift();
    this.buf[(this.start + this.size) % this.capacity] = v;
    this.size++;
    return dropped;
  }
  shift(): T | undefined {
    if (this.size === 0) return undefined;
    const v = this.buf[this.start];
    this.buf[this.start] = undefined;
    this.start = (this.start + 1) % this.capacity;
    this.size--;
    return v;
  }
  first(): T | undefined {
    return this.size ? this.buf[this.start] : undefined;
  }
  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.size; i++) out.push(this.buf[(this.start + i) % this.capacity] as T);
    return out;
  }
}

/** Lines of one multi-line record, capped; counts what was left out. */
class LineBlock {
  lines: string[] = [];
  private chars = 0;
  private omitted = 0;
  add(line: string): void {
    if (this.lines.length >= MAX_RECORD_LINES || this.chars + line.length > MAX_RECORD_CHARS) {
      this.omitted++;
      return;
    }
    this.lines.push(line);
    this.chars += line.length + 1;
  }
  text(trimTrailingBlank = false): string {
    const lines = this.lines.slice();
    if (trimTrailingBlank) while (lines.length > 1 && isBlank(lines[lines.length - 1]!)) lines.pop();
    if (this.omitted) lines.push(`... (${this.omitted} more lines omitted)`);
    return joinLines(lines);
  }
}

// ---------------------------------------------------------------------------------------------
// Python literal parser for the pprint'ed stats dict (LogParser regex-rewrites it into JSON;
// a real parser also copes with wrapped strings, tz-aware datetimes and True/False/None).

class IncompleteLiteral extends Error {}

const PY_ESCAPES: Record<string, string> = {
  n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0', a: '\x07', b: '\b', f: '\f', v: '\v',
};

class PyLiteralParser {
  private pos = 0;
  constructor(private readonly s: string) {}

  /** Parses one value starting at the first '{'; returns it and the index just after it. */
  static parseDict(text: string): { value: CrawlerStatsValue; end: number } {
    const p = new PyLiteralParser(text);
    p.pos = text.indexOf('{');
    if (p.pos < 0) throw new IncompleteLiteral('no dict yet');
    const value = p.value();
    return { value, end: p.pos };
  }

  private peek(): string {
    if (this.pos >= this.s.length) throw new IncompleteLiteral('unexpected end');
    return this.s[this.pos]!;
  }
  private ws(): void {
    while (this.pos < this.s.length && /\s/.test(this.s[this.pos]!)) this.pos++;
  }
  private expect(c: string): void {
    this.ws();
    if (this.peek() !== c) throw new SyntaxError(`expected '${c}' at ${this.pos}`);
    this.pos++;
  }

  private value(): CrawlerStatsValue {
    this.ws();
    const c = this.peek();
    if (c === '{') return this.dict();
    if (c === '[' || c === '(') return this.list(c === '[' ? ']' : ')');
    if (c === "'" || c === '"' || (/[bBuUrR]/.test(c) && /['"]/.test(this.s[this.pos + 1] ?? ''))) return this.strings();
    if (c === '<') return this.balanced('<', '>');
    const num = /^-?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)/.exec(this.s.slice(this.pos, this.pos + 64));
    if (num) {
      this.pos += num[0].length;
      return Number(num[0]);
    }
    const ident = /^[A-Za-z_][\w.]*/.exec(this.s.slice(this.pos, this.pos + 256));
    if (!ident) throw new SyntaxError(`unexpected '${c}' at ${this.pos}`);
    this.pos += ident[0].length;
    if (this.pos < this.s.length && this.s[this.pos] === '(') {
      // datetime.datetime(2026, 1, 2, 3, 4, 5, 6) and other reprs stay strings, as in LogParser.
      return ident[0] + this.balanced('(', ')');
    }
    if (ident[0] === 'True') return true;
    if (ident[0] === 'False') return false;
    if (ident[0] === 'None') return null;
    return ident[0];
  }

  private dict(): { [key: string]: CrawlerStatsValue } {
    const out: { [key: string]: CrawlerStatsValue } = {};
    this.pos++; // '{'
    for (;;) {
      this.ws();
      if (this.peek() === '}') {
        this.pos++;
        return out;
      }
      const key = this.value();
      this.expect(':');
      out[typeof key === 'string' ? key : JSON.stringify(key)] = this.value();
      this.ws();
      const sep = this.peek();
      this.pos++;
      if (sep === '}') return out;
      if (sep !== ',') throw new SyntaxError(`expected ',' or '}' at ${this.pos - 1}`);
    }
  }

  private list(close: string): CrawlerStatsValue[] {
    const out: CrawlerStatsValue[] = [];
    this.pos++;
    for (;;) {
      this.ws();
      if (this.peek() === close) {
        this.pos++;
        return out;
      }
      out.push(this.value());
      this.ws();
      const sep = this.peek();
      this.pos++;
      if (sep === close) return out;
      if (sep !== ',') throw new SyntaxError(`expected ',' at ${this.pos - 1}`);
    }
  }

  private balanced(open: string, close: string): string {
    const from = this.pos;
    let depth = 0;
    let quote = '';
    for (; this.pos < this.s.length; this.pos++) {
      const c = this.s[this.pos]!;
      if (quote) {
        if (c === '\\') this.pos++;
        else if (c === quote) quote = '';
      } else if (c === "'" || c === '"') quote = c;
      else if (c === open) depth++;
      else if (c === close && --depth === 0) return this.s.slice(from, ++this.pos);
    }
    throw new IncompleteLiteral('unbalanced');
  }

  /** One or more adjacent string literals (pprint wraps long strings that way). */
  private strings(): string {
    let out = this.string();
    for (;;) {
      const save = this.pos;
      this.ws();
      if (this.pos >= this.s.length) {
        this.pos = save;
        return out;
      }
      const c = this.s[this.pos]!;
      if (c === "'" || c === '"' || (/[bBuUrR]/.test(c) && /['"]/.test(this.s[this.pos + 1] ?? ''))) out += this.string();
      else {
        this.pos = save;
        return out;
      }
    }
  }

  private string(): string {
    let raw = false;
    while (/[bBuUrRfF]/.test(this.peek())) {
      if (/[rR]/.test(this.s[this.pos]!)) raw = true;
      this.pos++;
    }
    const q = this.peek();
    this.pos++;
    let out = '';
    for (;;) {
      const c = this.peek();
      this.pos++;
      if (c === q) return out;
      if (c !== '\\' || raw) {
        out += c;
        continue;
      }
      const e = this.peek();
      this.pos++;
      const hexLen = e === 'x' ? 2 : e === 'u' ? 4 : e === 'U' ? 8 : 0;
      if (hexLen) {
        const hex = this.s.slice(this.pos, this.pos + hexLen);
        if (hex.length < hexLen) throw new IncompleteLiteral('escape');
        this.pos += hexLen;
        out += String.fromCodePoint(parseInt(hex, 16));
      } else if (e in PY_ESCAPES) out += PY_ESCAPES[e];
      else if (e === '\n') {
        // line continuation
      } else out += '\\' + e;
    }
  }
}

/** LogParser's get_ordered_dict(source='log') with the dump line's time as last_update_*. */
function orderedCrawlerStats(stats: { [key: string]: CrawlerStatsValue }, dumpTime: string): CrawlerStats {
  const out: CrawlerStats = { source: 'log', last_update_time: dumpTime, last_update_timestamp: localTimestamp(dumpTime) };
  for (const k of Object.keys(stats).sort()) if (!(k in out)) out[k] = stats[k]!;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Error extraction state machine.

type ErrorMode =
  | 'scrapy' // continuation lines of a timestamped Scrapy ERROR/CRITICAL record: attach all
  | 'plain' // a "[ERROR] ..." style line: attach a traceback/stack only if one starts next
  | 'py' // inside a Python traceback, before its final exception line
  | 'py-after' // after the final line: a chained traceback may follow
  | 'py-chain' // after "During handling of the above exception ...": expecting "Traceback"
  | 'js'; // inside a JS stack ("    at ..." lines, then an optional "{ code: ... }" block)

interface OpenError {
  record: SpiderErrorRecord;
  block: LineBlock;
  mode: ErrorMode;
  held: string[]; // blank lines held back in py-after/py-chain until we know they belong
  /** A bare traceback is named by its final exception line; a logged error keeps its own text. */
  messageFromFinalLine: boolean;
}

// ---------------------------------------------------------------------------------------------

export class ScrapyLogParser {
  private readonly opts: Required<Omit<LogParserOptions, 'now'>> & { now: () => Date };

  // line splitting
  private partial = '';
  private skippingLongLine = false;
  private ended = false;

  // head / tail
  private headLines: string[] = [];
  private headNonBlank = 0;
  private started = false; // LogParser strips the text: leading blank lines don't count
  private tail: Ring<string>;
  private tailNonBlank = 0;

  // times
  private firstLogTime = '';
  private latestLogTime = '';

  // datas (downsampled when long: keep every `datasStride`-th row, always report the newest)
  private datas: DatasRow[] = [];
  private datasStride = 1;
  private datasSeen = 0;
  private lastDatasRow: DatasRow | null = null;
  private lastDatasKept = true;
  private maxPages: number | null = null;
  private maxItems: number | null = null;

  private matches: LatestMatches = {
    scrapy_version: '',
    telnet_console: '',
    telnet_username: '',
    telnet_password: '',
    resuming_crawl: '',
    latest_offsite: '',
    latest_duplicate: '',
    latest_crawl: '',
    latest_scrape: '',
    latest_item: '',
    latest_stat: '',
  };

  // log categories
  private counts: Record<LogCategoryKey, number>;
  private details: Record<LogCategoryKey, string[]>;
  private openCategory: { keys: LogCategoryKey[]; block: LineBlock } | null = null;

  private shutdownReason = NA;
  private spiderClosedReason: string | null = null;

  // stats dump
  private dumpTime: string | null = null;
  private dumpText: string[] | null = null; // collecting
  private dumpChars = 0;
  private crawlerStats: { [key: string]: CrawlerStatsValue } | null = null;
  private crawlerStatsError: { error: string; raw: string } | null = null;

  // errors
  private errorRecords: Ring<SpiderErrorRecord> = new Ring(MAX_ERROR_RECORDS);
  private totalErrors = 0;
  private openError: OpenError | null = null;
  private scrapyLevel: string | null = null; // level of the last timestamped Scrapy record
  private jsCandidate: string | null = null; // "TypeError: x" waiting for an "    at" line
  private crashHeaderLeft = 0;

  constructor(
    private readonly meta: { project: string; spider: string; job: string; logPath: string },
    options: LogParserOptions = {},
  ) {
    this.opts = {
      scrapydServer: options.scrapydServer ?? '127.0.0.1:6800',
      logparserVersion: options.logparserVersion ?? LOGPARSER_VERSION,
      headLines: options.headLines ?? 100,
      tailLines: options.tailLines ?? 200,
      categoriesLimit: options.categoriesLimit ?? 10,
      now: options.now ?? (() => new Date()),
    };
    this.tail = new Ring(Math.max(MAX_TAIL_LINES_TOTAL, this.opts.tailLines));
    this.counts = Object.fromEntries(CATEGORY_KEYS.map((k) => [k, 0])) as Record<LogCategoryKey, number>;
    this.details = Object.fromEntries(CATEGORY_KEYS.map((k) => [k, [] as string[]])) as Record<LogCategoryKey, string[]>;
  }

  // -------------------------------------------------------------------------------------------
  // Input

  feed(chunk: string): void {
    if (this.ended || chunk.length === 0) return;
    const text = this.partial + chunk;
    this.partial = '';
    const nl = /\r\n|\n|\r/g;
    let lineStart = 0;
    let m: RegExpExecArray | null;
    while ((m = nl.exec(text)) !== null) {
      // A trailing '\r' may be the first half of '\r\n' split across chunks.
      if (m[0] === '\r' && m.index === text.length - 1) break;
      this.takeLine(text, lineStart, m.index);
      lineStart = m.index + m[0].length;
    }
    this.keepPartial(text, lineStart);
  }

  end(): void {
    if (this.ended) return;
    if (this.partial.length > 0 || this.skippingLongLine) {
      const rest = this.partial.endsWith('\r') ? this.partial.slice(0, -1) : this.partial;
      this.partial = '';
      if (!this.skippingLongLine) this.line(rest);
      this.skippingLongLine = false;
    }
    this.ended = true;
    this.closeCategory(true);
    this.finishStatsDump(true);
    this.closeError();
    this.jsCandidate = null;
  }

  private takeLine(text: string, from: number, to: number): void {
    if (this.skippingLongLine) {
      this.skippingLongLine = false; // the kept prefix was already processed
      return;
    }
    this.line(to - from > MAX_LINE_CHARS ? text.slice(from, from + MAX_LINE_CHARS) : text.slice(from, to));
  }

  private keepPartial(text: string, from: number): void {
    if (this.skippingLongLine) return;
    const rest = text.slice(from);
    if (rest.length > MAX_LINE_CHARS) {
      // Process the capped prefix now and drop the rest of this line as it streams in.
      this.line(rest.slice(0, MAX_LINE_CHARS));
      this.skippingLongLine = true;
    } else this.partial = rest;
  }

  // -------------------------------------------------------------------------------------------
  // Per line

  private line(line: string): void {
    const blank = isBlank(line);
    if (!this.started) {
      if (blank) return;
      this.started = true;
    }
    this.headTail(line, blank);

    const timestamped = line.length >= 20 && line.charCodeAt(4) === 45 && TS_LINE_RE.test(line);
    const boundary = timestamped && RECORD_BOUNDARY_RE.test(line);
    if (timestamped) {
      const t = line.slice(0, 19);
      if (!this.firstLogTime) this.firstLogTime = detach(t);
      this.latestLogTime = t;
    }

    if (this.dumpText) this.collectStatsDump(line, boundary);
    this.categories(line, boundary);
    if (timestamped) this.timestampedLine(line);
    this.latestMatches(line, timestamped);
    this.errorsLine(line, blank, timestamped);
  }

  private headTail(line: string, blank: boolean): void {
    if (this.headNonBlank < this.opts.headLines) {
      this.headLines.push(detach(line));
      if (!blank) this.headNonBlank++;
    }
    const dropped = this.tail.push(line); // the ring is also a hard cap on blank lines
    if (dropped !== undefined && !isBlank(dropped)) this.tailNonBlank--;
    if (!blank) this.tailNonBlank++;
    // Like LogParser's cut_text(): keep the newest N non-blank lines and the blanks among them.
    while (this.tailNonBlank > this.opts.tailLines) {
      const oldest = this.tail.shift();
      if (oldest !== undefined && !isBlank(oldest)) this.tailNonBlank--;
      while (this.tail.size && isBlank(this.tail.first()!)) this.tail.shift();
    }
  }

  private timestampedLine(line: string): void {
    if (line.includes(' pages (at ')) {
      const d = DATAS_RE.exec(line);
      if (d) this.addDatas([detach(d[1]!), +d[2]!, +d[3]!, +d[4]!, +d[5]!]);
    }
    if (line.includes('Received SIGTERM')) {
      const s = SIGTERM_RE.exec(line);
      if (s) this.shutdownReason = detach(s[1]!);
    }
    if (this.dumpTime === null && line.includes('Dumping Scrapy stats:')) {
      const d = STATS_DUMP_RE.exec(line);
      if (d) {
        this.dumpTime = detach(d[1]!);
        this.dumpText = [line.slice(line.indexOf('Dumping Scrapy stats:') + 'Dumping Scrapy stats:'.length)];
        this.dumpChars = 0;
        this.tryParseStatsDump();
      }
    }
    if (line.includes('Spider closed')) {
      const c = SPIDER_CLOSED_RE.exec(line);
      if (c) this.spiderClosedReason = detach(c[1] ?? '');
    }
  }

  private addDatas(row: DatasRow): void {
    this.maxPages = this.maxPages === null ? row[1] : Math.max(this.maxPages, row[1]);
    this.maxItems = this.maxItems === null ? row[3] : Math.max(this.maxItems, row[3]);
    this.lastDatasRow = row;
    this.lastDatasKept = this.datasSeen++ % this.datasStride === 0;
    if (!this.lastDatasKept) return;
    this.datas.push(row);
    if (this.datas.length >= MAX_DATAS_ROWS) {
      // Halve the resolution (MAX_DATAS_ROWS is even: rows 0, 2, ..., n-2 stay, so the next
      // row is on the new grid); the dropped newest row is still reported via lastDatasRow.
      this.datas = this.datas.filter((_, i) => i % 2 === 0);
      this.datasStride *= 2;
      this.datasSeen = 0;
      this.lastDatasKept = false;
    }
  }

  private latestMatches(line: string, timestamped: boolean): void {
    for (const key of MATCH_KEYS) {
      if (key !== 'latest_item' && !timestamped) continue;
      if (FIRST_MATCH_KEYS.has(key) && this.matches[key]) continue;
      const [needle, re] = MATCH_PATTERNS[key];
      if (!line.includes(needle) || !re.test(line)) continue;
      this.matches[key] = detach(this.extractMatch(key, line));
    }
  }

  private extractMatch(key: MatchKey, line: string): string {
    let m: RegExpExecArray | null;
    switch (key) {
      case 'scrapy_version':
        m = /Scrapy (\d+\.\d+\.\d+) started/.exec(line);
        return m ? m[1]! : '';
      case 'telnet_console':
        m = /listening on (.+)$/.exec(line);
        return m ? m[1]! : '';
      case 'telnet_username':
        m = /TELNETCONSOLE_USERNAME['"]: (['"])(.+?)\1/.exec(line);
        return m ? m[2]! : '';
      case 'telnet_password':
        m = /(Telnet Password: )(.+)/.exec(line) ?? /TELNETCONSOLE_PASSWORD['"]: (['"])(.+?)\1/.exec(line);
        return m ? m[2]! : '';
      case 'latest_item':
        // LogParser decodes Python 2 style "\u6c49" escapes.
        return line.includes('\\u')
          ? line.replace(/\\u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
          : line;
      default:
        return line;
    }
  }

  // Log categories: a record runs from a boundary line to the next boundary line.
  private categories(line: string, boundary: boolean): void {
    if (boundary) {
      this.closeCategory(false);
      const keys: LogCategoryKey[] = [];
      for (const [key, needle, re] of CATEGORY_PATTERNS) if (line.includes(needle) && re.test(line)) keys.push(key);
      if (keys.length === 0) return;
      for (const key of keys) {
        // "Gave up retrying <" is kept in the details but not counted as a retry.
        if (key !== 'retry_logs' || !line.includes('Gave up retrying <')) this.counts[key]++;
      }
      this.openCategory = { keys, block: new LineBlock() };
    }
    this.openCategory?.block.add(line);
  }

  private closeCategory(final: boolean): void {
    if (!this.openCategory) return;
    const text = this.openCategory.block.text(final);
    for (const key of this.openCategory.keys) this.pushDetail(this.details[key], text);
    this.openCategory = null;
  }

  private pushDetail(list: string[], text: string): void {
    list.push(text);
    if (list.length > this.opts.categoriesLimit) list.splice(0, list.length - this.opts.categoriesLimit);
  }

  // Stats dump: text after "Dumping Scrapy stats:" up to the end of the dict.
  private collectStatsDump(line: string, boundary: boolean): void {
    if (boundary) {
      this.finishStatsDump(true); // a new record started: whatever we have is all there is
      return;
    }
    this.dumpText!.push(line);
    this.dumpChars += line.length + 1;
    if (this.dumpChars > MAX_STATS_DUMP_CHARS) this.finishStatsDump(true);
    else if (line.includes('}')) this.tryParseStatsDump();
  }

  private tryParseStatsDump(): void {
    if (!this.dumpText) return;
    const raw = this.dumpText.join('\n');
    try {
      const { value } = PyLiteralParser.parseDict(raw);
      this.crawlerStats = value !== null && typeof value === 'object' && !Array.isArray(value) ? value : {};
      this.dumpText = null;
    } catch (err) {
      if (err instanceof IncompleteLiteral) return; // wait for more lines
      this.crawlerStatsError = { error: String(err), raw: raw.trim() };
      this.dumpText = null;
    }
  }

  private finishStatsDump(force: boolean): void {
    if (!this.dumpText) return;
    this.tryParseStatsDump();
    if (this.dumpText && force) {
      const raw = this.dumpText.join('\n').trim();
      this.dumpText = null;
      if (raw.includes('{')) this.crawlerStatsError = { error: 'incomplete stats dict', raw };
      else this.dumpTime = null; // no dict followed: maybe a later dump has one
    }
  }

  // -------------------------------------------------------------------------------------------
  // Errors

  private errorsLine(line: string, blank: boolean, timestamped: boolean): void {
    const rec = timestamped ? SCRAPY_RECORD_RE.exec(line) : null;
    if (rec) {
      this.closeError();
      this.jsCandidate = null;
      this.scrapyLevel = rec[3]!;
      if (this.scrapyLevel === 'ERROR' || this.scrapyLevel === 'CRITICAL') {
        this.openRecord(
          { time: detach(rec[1]!), level: this.scrapyLevel, logger: detach(rec[2]!), message: detach(rec[4]!), traceback: null },
          'scrapy',
        );
      }
      return;
    }
    if (this.openError && this.continueError(line, blank)) return;
    this.detectPlain(line, blank);
  }

  /** Returns true when the line was consumed by the open error record. */
  private continueError(line: string, blank: boolean): boolean {
    const open = this.openError!;
    switch (open.mode) {
      case 'scrapy':
        open.block.add(line);
        return true;
      case 'plain':
        if (PY_TB_START_RE.test(line)) {
          open.block.add(line);
          open.mode = 'py';
          return true;
        }
        if (JS_AT_RE.test(line)) {
          open.block.add(line);
          open.mode = 'js';
          return true;
        }
        break;
      case 'py':
        if (!blank && /^\s/.test(line)) {
          open.block.add(line);
          return true;
        }
        if (!blank && !PY_TB_START_RE.test(line)) {
          open.block.add(line); // the final "SomeError: message" line
          if (open.messageFromFinalLine) open.record.message = detach(line);
          open.mode = 'py-after';
          return true;
        }
        break;
      case 'py-after':
      case 'py-chain':
        if (blank) {
          open.held.push(line);
          return true;
        }
        if (open.mode === 'py-after' ? PY_CHAIN_RE.test(line) : PY_TB_START_RE.test(line)) {
          for (const h of open.held) open.block.add(h);
          open.held = [];
          open.block.add(line);
          open.mode = open.mode === 'py-after' ? 'py-chain' : 'py';
          return true;
        }
        break;
      case 'js':
        if (!blank && (/^\s/.test(line) || line.startsWith('}'))) {
          open.block.add(line);
          return true;
        }
        break;
    }
    this.closeError();
    return false;
  }

  private detectPlain(line: string, blank: boolean): void {
    const candidate = this.jsCandidate;
    this.jsCandidate = null;
    if (candidate !== null && JS_AT_RE.test(line)) {
      this.openStderr(candidate, 'ERROR', 'js').block.add(line);
      return;
    }
    if (this.crashHeaderLeft > 0) this.crashHeaderLeft--;
    if (blank) return;
    // A traceback printed under a Scrapy WARNING belongs to that warning.
    const inWarning = this.scrapyLevel === 'WARNING';

    if (PY_TB_START_RE.test(line)) {
      if (!inWarning) this.openStderr(line, 'ERROR', 'py');
      return;
    }
    if (NODE_CRASH_HEADER_RE.test(line)) {
      this.crashHeaderLeft = CRASH_HEADER_WINDOW;
      return;
    }
    if (JS_ERROR_LINE_RE.test(line)) {
      if (inWarning) return;
      if (line.startsWith('Uncaught') || this.crashHeaderLeft > 0) {
        this.crashHeaderLeft = 0;
        this.openStderr(line, 'ERROR', 'js');
      } else this.jsCandidate = line;
      return;
    }
    for (const re of PLAIN_LEVEL_RES) {
      const m = re.exec(line);
      if (!m) continue;
      const word = (m[1] ?? m[2] ?? '').toUpperCase();
      const level = word === 'CRITICAL' || word === 'CRIT' || word === 'FATAL' || word === 'PANIC' || word === '60' ? 'CRITICAL' : 'ERROR';
      this.openRecord({ time: formatLocalTime(this.opts.now()), level, logger: 'stderr', message: detach(line), traceback: null }, 'plain');
      return;
    }
  }

  private openStderr(firstLine: string, level: 'ERROR' | 'CRITICAL', mode: ErrorMode): OpenError {
    const open = this.openRecord(
      { time: formatLocalTime(this.opts.now()), level, logger: 'stderr', message: detach(firstLine), traceback: null },
      mode,
    );
    open.block.add(firstLine);
    return open;
  }

  private openRecord(record: SpiderErrorRecord, mode: ErrorMode): OpenError {
    this.closeError();
    this.totalErrors++;
    this.openError = { record, block: new LineBlock(), mode, held: [], messageFromFinalLine: mode === 'py' };
    return this.openError;
  }

  private finalizeRecord(open: OpenError): SpiderErrorRecord {
    const r = { ...open.record };
    if (open.block.lines.length > 0) r.traceback = open.block.text(true);
    if ((!r.message || PY_TB_START_RE.test(r.message)) && open.block.lines.length > 0) {
      // e.g. "[twisted] CRITICAL:" with the traceback below: use the exception line.
      r.message = detach(open.block.lines.filter((l) => !isBlank(l)).pop() ?? '');
    }
    return r;
  }

  private closeError(): void {
    if (!this.openError) return;
    this.errorRecords.push(this.finalizeRecord(this.openError));
    this.openError = null;
  }

  // -------------------------------------------------------------------------------------------
  // Output

  errors(): SpiderErrorRecord[] {
    const list = this.errorRecords.toArray();
    if (this.openError) {
      list.push(this.finalizeRecord(this.openError)); // still receiving traceback lines
      if (list.length > MAX_ERROR_RECORDS) list.shift();
    }
    return list;
  }

  errorCount(): number {
    return this.totalErrors;
  }

  /**
   * LogParser's per-job JSON. `finished` means the process has exited: the last record is then
   * complete. finish_reason stays 'N/A' until Scrapy dumps its stats (or logs "Spider closed").
   */
  stats(sizeBytes: number, finished: boolean): LogParserJobStats {
    const now = this.opts.now();
    const nowTs = Math.floor(now.getTime() / 1000);
    const { project, spider, job, logPath } = this.meta;

    const head = this.headLines.join('\n');
    const tailLines = this.tail.toArray();
    while (tailLines.length && isBlank(tailLines[tailLines.length - 1]!)) tailLines.pop();

    const hasTimes = this.firstLogTime !== '' && this.latestLogTime !== '';
    const datas = this.lastDatasKept || !this.lastDatasRow ? this.datas.slice() : [...this.datas, this.lastDatasRow];

    const log_categories = {} as LogCategories;
    for (const key of CATEGORY_KEYS) {
      const details = this.details[key].slice();
      if (this.openCategory?.keys.includes(key)) {
        details.push(this.openCategory.block.text(finished));
        if (details.length > this.opts.categoriesLimit) details.shift();
      }
      log_categories[key] = { count: this.counts[key], details };
    }

    let pages = this.maxPages;
    let items = this.maxItems;
    let finish_reason = this.spiderClosedReason || NA;
    let crawler_stats: CrawlerStats = {};
    if (this.dumpTime && this.crawlerStats) {
      const s = this.crawlerStats;
      if (typeof s['finish_reason'] === 'string') finish_reason = s['finish_reason'];
      if (typeof s['response_received_count'] === 'number') pages = s['response_received_count'];
      if (typeof s['item_scraped_count'] === 'number') items = s['item_scraped_count'];
      let redirects = 0;
      for (const [k, v] of Object.entries(s)) {
        if (k.startsWith('downloader/response_status_count/3') && typeof v === 'number') redirects += v;
      }
      if (redirects > 0) log_categories.redirect_logs.count = redirects;
      for (const [cat, key] of STATS_COUNT_KEYS) {
        const v = s[key];
        if (typeof v === 'number' && v > 0) log_categories[cat].count = v;
      }
      crawler_stats = orderedCrawlerStats(s, this.dumpTime);
    } else if (this.dumpTime && this.crawlerStatsError) {
      crawler_stats = orderedCrawlerStats(
        { json_loads_error: this.crawlerStatsError.error, stats: this.crawlerStatsError.raw },
        this.dumpTime,
      );
    }

    const latest_matches = { ...this.matches };
    const tsOf = (line: string): number => (line ? localTimestamp(line.slice(0, 19)) : 0);

    return {
      log_path: logPath,
      json_path: join(dirname(logPath), `${jobKeyFromLogFile(basename(logPath)) || job}.json`),
      json_url: `http://${this.opts.scrapydServer}/logs/${project}/${spider}/${job}.json`,
      size: sizeBytes,
      position: sizeBytes,
      status: 'ok',
      _head: this.headNonBlank < this.opts.headLines ? head : this.opts.headLines,
      head,
      tail: tailLines.join('\n'),
      first_log_time: hasTimes ? this.firstLogTime : NA,
      latest_log_time: hasTimes ? this.latestLogTime : NA,
      runtime: hasTimes ? pythonTimedelta(this.firstLogTime, this.latestLogTime) : NA,
      first_log_timestamp: hasTimes ? localTimestamp(this.firstLogTime) : 0,
      latest_log_timestamp: hasTimes ? localTimestamp(this.latestLogTime) : 0,
      datas,
      pages,
      items,
      latest_matches,
      latest_crawl_timestamp: tsOf(latest_matches.latest_crawl),
      latest_scrape_timestamp: tsOf(latest_matches.latest_scrape),
      log_categories,
      shutdown_reason: this.shutdownReason,
      finish_reason,
      crawler_stats,
      last_update_time: formatLocalTime(new Date(nowTs * 1000)),
      last_update_timestamp: nowTs,
      logparser_version: this.opts.logparserVersion,
      crawler_engine: {},
    };
  }
}

// ---------------------------------------------------------------------------------------------
// stats.json

export interface StatsFileOptions {
  scrapydServer?: string;
  logsDir?: string;
  logparserVersion?: string;
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
    settings_py: 'spiderplane: slave/logs/scrapy_log_parser.ts',
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

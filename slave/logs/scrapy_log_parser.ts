// LogParser-compatible statistics for Scrapy logs, computed incrementally (the JSON shapes, and
// what differs between LogParser 0.8.2 and 0.8.4, are in logparser_json.ts).
//
// The parser does no I/O: feed() it text in any chunking. Each line is classified once
// (timestamped? a record boundary?) and handed to the parts that need it: head/tail, the `datas`
// series, latest matches, log categories, the stats dump (parsed by py_literal.ts) and the error
// extraction (error_extractor.ts). It keeps only what the output needs, so memory stays bounded
// for huge logs (limits in log_patterns.ts).

import { basename, dirname, join } from 'node:path';
import { ErrorExtractor, type SpiderErrorRecord } from './error_extractor.ts';
import { detach, isBlank, LineBlock, Ring } from './line_buffers.ts';
import {
  CATEGORY_KEYS, CATEGORY_PATTERNS, DATAS_RE, FIRST_MATCH_KEYS, MATCH_KEYS, MATCH_PATTERNS, MAX_DATAS_ROWS, MAX_LINE_CHARS,
  MAX_STATS_DUMP_CHARS, MAX_TAIL_LINES_TOTAL, RECORD_BOUNDARY_RE, SCRAPED_FROM_RE, SHUTDOWN_RE_084, SIGTERM_RE, SPIDER_CLOSED_RE,
  STATS_COUNT_KEYS, STATS_DUMP_RE, TELNET_PASSWORD_RE_084, TELNET_USERNAME_RE_084, TS_LINE_RE, type MatchKey,
} from './log_patterns.ts';
import {
  formatLocalTime, isLogParserVersion, jobKeyFromLogFile, localTimestamp, LOGPARSER_VERSION, LOGPARSER_VERSIONS, NA, orderedCrawlerStats,
  orderedMatches, pythonTimedelta, type CrawlerStats, type CrawlerStatsValue, type DatasRow, type LatestMatches, type LogCategories,
  type LogCategoryKey, type LogParserJobStats, type LogParserVersion,
} from './logparser_json.ts';
import { IncompleteLiteral, PyLiteralParser } from './py_literal.ts';

// The module's public names, for the importers that know only this file.
export * from './logparser_json.ts';
export type { SpiderErrorRecord } from './error_extractor.ts';

export interface LogParserOptions {
  /** host:port put into json_url, like LogParser's SCRAPYD_SERVER. Default '127.0.0.1:6800'. */
  scrapydServer?: string;
  /** Which LogParser's JSON to write (and report); ScrapydWeb requires an exact match. Default 0.8.4. */
  logparserVersion?: LogParserVersion;
  /** LogParser's LOG_HEAD_LINES / LOG_TAIL_LINES / LOG_CATEGORIES_LIMIT (100 / 200 / 10). */
  headLines?: number;
  tailLines?: number;
  categoriesLimit?: number;
  /** Clock for last_update_time and for the time of errors found in plain logs. */
  now?: () => Date;
}

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

  // LogParser 0.8.4: the last "Scraped from <" line and the item printed after it
  private scrapeItem = { scrape: '', item: '' };
  private pendingScrape: string | null = null; // a "Scraped from" line: is an item next?
  private openItem: { scrape: string; block: LineBlock } | null = null;
  private telnet084 = { username: '', password: '' };
  private shutdown084 = NA;

  private readonly errorx: ErrorExtractor;

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
    if (!isLogParserVersion(this.opts.logparserVersion)) throw new Error(`LogParser version '${this.opts.logparserVersion}' is not one of ${LOGPARSER_VERSIONS.join(', ')}`);
    this.errorx = new ErrorExtractor(this.opts.now);
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
    this.closeItem();
    this.errorx.end();
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
    this.scrapeAndItem(line, boundary, timestamped);
    this.errorx.line(line, blank, timestamped);
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
    if (line.includes('Received SIG')) {
      const s = SIGTERM_RE.exec(line);
      if (s) this.shutdownReason = detach(s[1]!);
      const s084 = SHUTDOWN_RE_084.exec(line);
      if (s084) this.shutdown084 = detach(s084[1]!);
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
    // 0.8.4 finds the telnet credentials in any line (the first that has them).
    if (!this.telnet084.username && line.includes('TELNETCONSOLE_USERNAME') && TELNET_USERNAME_RE_084.test(line)) {
      this.telnet084.username = detach(this.extractMatch('telnet_username', line));
    }
    if (!this.telnet084.password && (line.includes('TELNETCONSOLE_PASSWORD') || line.includes('Telnet Password')) && TELNET_PASSWORD_RE_084.test(line)) {
      this.telnet084.password = detach(this.extractMatch('telnet_password', line));
    }
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

  /**
   * LogParser 0.8.4's latest_scrape/latest_item: a "Scraped from <" line immediately followed by
   * a line starting with '{'; the item runs up to the next log record (so multi-line items count).
   */
  private scrapeAndItem(line: string, boundary: boolean, timestamped: boolean): void {
    const pending = this.pendingScrape;
    this.pendingScrape = null;
    if (this.openItem) {
      if (!boundary) {
        this.openItem.block.add(line);
        return;
      }
      this.closeItem();
    }
    if (pending !== null && line.startsWith('{')) {
      this.openItem = { scrape: pending, block: new LineBlock() };
      this.openItem.block.add(line);
      return;
    }
    if (timestamped && line.includes(': Scraped from <') && SCRAPED_FROM_RE.test(line)) this.pendingScrape = detach(line);
  }

  private closeItem(): void {
    if (!this.openItem) return;
    this.scrapeItem = { scrape: this.openItem.scrape, item: this.openItem.block.text(true) };
    this.openItem = null;
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
  // Output

  errors(): SpiderErrorRecord[] {
    return this.errorx.errors();
  }

  errorCount(): number {
    return this.errorx.errorCount();
  }

  /** The latest matches as LogParser 0.8.4 finds them (see logparser_json.ts for the differences). */
  private matches084(): LatestMatches {
    const pair = this.openItem ? { scrape: this.openItem.scrape, item: this.openItem.block.text(true) } : this.scrapeItem;
    const item = pair.item.includes('\\u') ? this.extractMatch('latest_item', pair.item) : pair.item;
    return { ...this.matches, telnet_username: this.telnet084.username, telnet_password: this.telnet084.password, latest_scrape: pair.scrape, latest_item: item };
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

    const version = this.opts.logparserVersion;
    const latest_matches = orderedMatches(version === '0.8.2' ? this.matches : this.matches084(), version);
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
      shutdown_reason: version === '0.8.2' ? this.shutdownReason : this.shutdown084,
      finish_reason,
      crawler_stats,
      last_update_time: formatLocalTime(new Date(nowTs * 1000)),
      last_update_timestamp: nowTs,
      logparser_version: this.opts.logparserVersion,
      crawler_engine: {},
    };
  }
}

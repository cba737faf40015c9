// Error records from a process log: Scrapy ERROR/CRITICAL records with their tracebacks, and from
// logs of non-Scrapy processes, Python tracebacks (chained ones as one record), Node/JS stacks and
// "[ERROR]" / "level=error" / JSON-logger lines. Not LogParser: spiderplane's own, for /errors.json.
// Fed line by line by ScrapyLogParser; keeps the newest MAX_ERROR_RECORDS records.

import { detach, isBlank, LineBlock, Ring } from './line_buffers.ts';
import {
  CRASH_HEADER_WINDOW, JS_AT_RE, JS_ERROR_LINE_RE, MAX_ERROR_RECORDS, NODE_CRASH_HEADER_RE, PLAIN_LEVEL_RES, PY_CHAIN_RE,
  PY_TB_START_RE, SCRAPY_RECORD_RE,
} from './log_patterns.ts';
import { formatLocalTime } from './logparser_json.ts';

export interface SpiderErrorRecord {
  time: string;
  level: 'ERROR' | 'CRITICAL';
  logger: string;
  message: string;
  traceback: string | null;
}

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
export class ErrorExtractor {
  private errorRecords: Ring<SpiderErrorRecord> = new Ring(MAX_ERROR_RECORDS);
  private totalErrors = 0;
  private openError: OpenError | null = null;
  private scrapyLevel: string | null = null; // level of the last timestamped Scrapy record
  private jsCandidate: string | null = null; // "TypeError: x" waiting for an "    at" line
  private crashHeaderLeft = 0;

  /** `now` dates errors found in plain logs, which carry no time of their own. */
  constructor(private readonly now: () => Date) {}

  /** One line of the log; `timestamped` when it starts with Scrapy's 'YYYY-MM-DD HH:MM:SS '. */
  line(line: string, blank: boolean, timestamped: boolean): void {
    this.errorsLine(line, blank, timestamped);
  }

  /** The log is complete: the last record is closed. */
  end(): void {
    this.closeError();
    this.jsCandidate = null;
  }

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
      this.openRecord({ time: formatLocalTime(this.now()), level, logger: 'stderr', message: detach(line), traceback: null }, 'plain');
      return;
    }
  }

  private openStderr(firstLine: string, level: 'ERROR' | 'CRITICAL', mode: ErrorMode): OpenError {
    const open = this.openRecord(
      { time: formatLocalTime(this.now()), level, logger: 'stderr', message: detach(firstLine), traceback: null },
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

}

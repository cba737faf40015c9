// Which log lines the job page highlights. Pure (no DOM), so it is tested in Node.
//
// Only real log records count: a Scrapy record whose level is ERROR or CRITICAL (and the lines that
// continue it, e.g. its traceback), a plain "[ERROR] …" / "ERROR: …" line, a Python traceback and a
// JavaScript stack. A level word inside a message or a stats dump ('log_count/ERROR': 1,) is text.

export type LineClass = 'l-error' | 'l-critical' | 'l-warning' | 'l-trace' | null;

const TS = String.raw`\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?`;
/** Scrapy's LOG_FORMAT: '%(asctime)s [%(name)s] %(levelname)s: %(message)s'. */
const SCRAPY_RECORD = new RegExp(`^${TS} \\[[^\\]]*\\] (DEBUG|INFO|WARNING|ERROR|CRITICAL):`);
/** Any other line that starts with a timestamp starts a new record too. */
const TIMESTAMPED = new RegExp(`^\\[?${TS}`);
/** Plain formats: "[ERROR] x", "2026-… [error] x", "ERROR: x", "ERROR x", "WARNING: x". */
const PLAIN_LEVEL = new RegExp(`^(?:\\[?${TS}\\]?\\s+)?(?:\\[(error|critical|fatal|warning|warn)\\]|(ERROR|CRITICAL|FATAL|WARNING)(?::|\\s+\\S))`, 'i');
const PY_TRACEBACK = /^\s*Traceback \(most recent call last\):\s*$/;
const PY_CHAIN = /^(During handling of the above exception, another exception occurred:|The above exception was the direct cause of the following exception:)\s*$/;
const JS_ERROR = /^(?:Uncaught\s+)?(?:[A-Z][\w$]*)?(?:Error|Exception)(?: \[[A-Z0-9_]+\])?: /;
const JS_AT = /^\s+at\s/;

function levelClass(word: string): LineClass {
  const w = word.toUpperCase();
  if (w === 'CRITICAL' || w === 'FATAL') return 'l-critical';
  if (w === 'ERROR') return 'l-error';
  if (w === 'WARNING' || w === 'WARN') return 'l-warning';
  return null;
}

/** Classifies lines in order; it remembers whether the previous lines opened an error or a traceback. */
export class LogHighlighter {
  /** 'record': lines after an ERROR/CRITICAL record belong to it; 'trace': inside a Python traceback; 'stack': a JS stack. */
  private mode: 'none' | 'record' | 'trace' | 'stack' = 'none';

  classify(line: string): LineClass {
    const scrapy = SCRAPY_RECORD.exec(line);
    if (scrapy) {
      const cls = levelClass(scrapy[1]!);
      this.mode = cls === 'l-error' || cls === 'l-critical' ? 'record' : 'none';
      return cls;
    }
    if (PY_TRACEBACK.test(line)) {
      this.mode = 'trace';
      return 'l-trace';
    }
    const plain = PLAIN_LEVEL.exec(line);
    if (plain && (plain[1] !== undefined || plain[2] !== undefined)) {
      // A plain line is one line: what follows is only highlighted if it is a traceback or stack.
      this.mode = 'none';
      return levelClass(plain[1] ?? plain[2]!);
    }
    if (TIMESTAMPED.test(line)) {
      this.mode = 'none';
      return null;
    }
    switch (this.mode) {
      case 'record':
        return 'l-trace'; // the rest of an error record: its message lines and its traceback
      case 'trace':
        // Indented frames, blank lines and chain markers stay inside; the first flush-left line
        // is the exception itself and ends the traceback.
        if (line === '' || /^\s/.test(line) || PY_CHAIN.test(line)) return 'l-trace';
        this.mode = 'none';
        return 'l-trace';
      case 'stack':
        if (JS_AT.test(line)) return 'l-trace';
        this.mode = 'none';
        break;
      default:
        break;
    }
    if (JS_ERROR.test(line)) {
      this.mode = 'stack';
      return 'l-trace';
    }
    return null;
  }
}

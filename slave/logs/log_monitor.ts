import { open, stat } from 'node:fs/promises';
import { ScrapyLogParser, type SpiderErrorRecord } from './scrapy_log_parser.ts';
import { LOGPARSER_VERSION, type LogParserVersion } from './logparser_json.ts';

interface Watched {
  parser: ScrapyLogParser;
  path: string;
  offset: number;
  reading: Promise<void> | null;
  errorsSeen: number;
}

export interface JobLogSummary {
  stats: object;
  errors: SpiderErrorRecord[];
  errorCount: number;
}

const CHUNK = 1 << 20;

/**
 * Follows the log files of running jobs in the background (reads only what was appended since
 * the last look) and keeps a LogParser-style parser per job, so stats and errors of a running
 * job are always at hand without re-reading its log. Never touches the event loop with sync I/O.
 */
export class LogMonitor {
  private readonly watched = new Map<number, Watched>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly intervalMs: number,
    private readonly onNewErrors: (uid: number, errors: SpiderErrorRecord[]) => void,
    /** host:port as LogParser prints it in json_url. */
    private readonly serverAddress: () => string,
    private readonly logparserVersion: LogParserVersion = LOGPARSER_VERSION,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => { for (const uid of this.watched.keys()) void this.pump(uid); }, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  watch(uid: number, meta: { project: string; spider: string; job: string; logPath: string }): void {
    this.watched.set(uid, { parser: new ScrapyLogParser(meta, { scrapydServer: this.serverAddress(), logparserVersion: this.logparserVersion }), path: meta.logPath, offset: 0, reading: null, errorsSeen: 0 });
  }

  isWatching(uid: number): boolean { return this.watched.has(uid); }

  private pump(uid: number): Promise<void> {
    const w = this.watched.get(uid);
    if (!w) return Promise.resolve();
    // One reader per job at a time; a caller that needs the latest state waits for it.
    w.reading ??= this.readNew(w).finally(() => {
      w.reading = null;
      const count = w.parser.errorCount();
      if (count !== w.errorsSeen) {
        w.errorsSeen = count;
        this.onNewErrors(uid, w.parser.errors());
      }
    });
    return w.reading;
  }

  private async readNew(w: Watched): Promise<void> {
    let fh;
    try {
      fh = await open(w.path, 'r');
    } catch {
      return; // not created yet
    }
    try {
      const buf = Buffer.alloc(CHUNK);
      const decoder = new TextDecoder('utf-8');
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, CHUNK, w.offset);
        if (bytesRead === 0) break;
        w.offset += bytesRead;
        w.parser.feed(decoder.decode(buf.subarray(0, bytesRead), { stream: true }));
      }
      const tail = decoder.decode();
      if (tail) w.parser.feed(tail);
    } finally {
      await fh.close();
    }
  }

  /** Live stats of a running job (LogParser's per-job JSON), or undefined when not watched. */
  async liveStats(uid: number): Promise<object | undefined> {
    const w = this.watched.get(uid);
    if (!w) return undefined;
    await this.pump(uid);
    return w.parser.stats(await sizeOf(w.path), false);
  }

  /** Reads the log to its end, stops following it, and returns the final summary. */
  async finish(uid: number): Promise<JobLogSummary | undefined> {
    const w = this.watched.get(uid);
    if (!w) return undefined;
    await this.pump(uid);
    await this.pump(uid); // a read that was already in flight may have missed the last bytes
    this.watched.delete(uid);
    w.parser.end();
    return { stats: w.parser.stats(await sizeOf(w.path), true), errors: w.parser.errors(), errorCount: w.parser.errorCount() };
  }

  /** Stops following without a summary (used when the daemon leaves jobs running on shutdown). */
  forget(uid: number): void { this.watched.delete(uid); }
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

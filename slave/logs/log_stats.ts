import type { JobStore } from '../jobs/job_store.ts';
import type { LogMonitor } from './log_monitor.ts';
import { logParserStatsFile, type LogParserJobStats } from './scrapy_log_parser.ts';

/** LogParser's stats.json and per-job JSON, from the stats the runner keeps for every job. */
export class LogStats {
  constructor(private readonly jobs: JobStore, private readonly logs: LogMonitor, private readonly serverAddress: () => string, private readonly logsDir: string) {}

  async forJob(project: string, spider: string, job: string): Promise<LogParserJobStats | undefined> {
    const row = this.jobs.latestById(project, spider, job);
    if (!row) return undefined;
    if (row.state === 'running') return (await this.logs.liveStats(row.uid)) as LogParserJobStats | undefined;
    return row.stats ? (JSON.parse(row.stats) as LogParserJobStats) : undefined;
  }

  async all(): Promise<object> {
    const entries: Array<{ project: string; spider: string; job: string; stats: LogParserJobStats }> = [];
    for (const r of this.jobs.finishedWithStats()) {
      entries.push({ project: r.project, spider: r.spider, job: r.id, stats: JSON.parse(r.stats!) as LogParserJobStats });
    }
    for (const r of this.jobs.running()) {
      const live = (await this.logs.liveStats(r.uid)) as LogParserJobStats | undefined;
      if (live) entries.push({ project: r.project, spider: r.spider, job: r.id, stats: live });
    }
    return logParserStatsFile(entries, { scrapydServer: this.serverAddress(), logsDir: this.logsDir });
  }
}

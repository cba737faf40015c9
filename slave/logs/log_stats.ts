import type { JobStore } from '../jobs/job_store.ts';
import type { LogMonitor } from './log_monitor.ts';
import { logParserStatsFile, reshapeJobStats, type LogParserJobStats, type LogParserStatsFile, type LogParserVersion } from './logparser_json.ts';

/**
 * LogParser's stats.json and per-job JSON, from the stats the runner keeps for every job. Each is
 * served in the shape of the configured LogParser version, including the stats stored for jobs
 * that finished under another one (so an upgrade does not leave old jobs refused by ScrapydWeb).
 */
export class LogStats {
  constructor(
    private readonly jobs: JobStore,
    private readonly logs: LogMonitor,
    private readonly serverAddress: () => string,
    private readonly logsDir: string,
    private readonly version: LogParserVersion,
  ) {}

  async forJob(project: string, spider: string, job: string): Promise<LogParserJobStats | undefined> {
    const row = this.jobs.latestById(project, spider, job);
    if (!row) return undefined;
    const stats = row.state === 'running' ? ((await this.logs.liveStats(row.uid)) as LogParserJobStats | undefined) : row.stats ? (JSON.parse(row.stats) as LogParserJobStats) : undefined;
    return stats && reshapeJobStats(stats, this.version);
  }

  async all(): Promise<LogParserStatsFile> {
    const entries: Array<{ project: string; spider: string; job: string; stats: LogParserJobStats }> = [];
    for (const r of this.jobs.finishedWithStats()) {
      entries.push({ project: r.project, spider: r.spider, job: r.id, stats: JSON.parse(r.stats!) as LogParserJobStats });
    }
    for (const r of this.jobs.running()) {
      const live = (await this.logs.liveStats(r.uid)) as LogParserJobStats | undefined;
      if (live) entries.push({ project: r.project, spider: r.spider, job: r.id, stats: live });
    }
    return logParserStatsFile(entries, { scrapydServer: this.serverAddress(), logsDir: this.logsDir, logparserVersion: this.version });
  }
}

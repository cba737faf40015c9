import { join } from 'node:path';

/** Where a job's log and items live: Scrapyd's layout, logs/PROJECT/SPIDER/JOB.log and items/PROJECT/SPIDER/JOB.jl. */
export class JobFiles {
  constructor(readonly logsDir: string, readonly itemsDir: string) {}

  paths(project: string, spider: string, job: string) {
    const logDir = join(this.logsDir, project, spider);
    const itemsDir = join(this.itemsDir, project, spider);
    return { logDir, itemsDir, logPath: join(logDir, `${job}.log`), itemsPath: join(itemsDir, `${job}.jl`) };
  }
}

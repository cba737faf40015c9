/**
 * Everything that makes a child running package code (a spider, `scrapy list`) unable to see the
 * daemon's secrets: who it runs as, the allow-listed environment it starts with, and folders it
 * may write handed to that user. Every spawn of package code goes through one SpiderSandbox.
 */
import { statSync } from 'node:fs';
import { giveFileToRunAs, giveToRunAs, type Who } from './data_layout.ts';
import type { SpiderIdentity } from './run_as.ts';
import { spiderBaseEnv, type SpiderEnvConfig } from './spider_env.ts';

export class SpiderSandbox {
  constructor(
    readonly identity: SpiderIdentity,
    private readonly envConfig: SpiderEnvConfig,
    private readonly daemonEnv: NodeJS.ProcessEnv,
  ) {}

  /** The user to hand writable folders to; null when spiders run as the daemon itself. */
  get who(): Who | null {
    const { uid, gid, name } = this.identity;
    return uid === null || gid === null ? null : { uid, gid, name };
  }

  /** uid/gid for child_process.spawn/execFile (libuv also clears supplementary groups when it switches). */
  spawnIdentity(): { uid?: number; gid?: number } {
    const { uid, gid } = this.identity;
    return uid === null || gid === null ? {} : { uid, gid };
  }

  /**
   * The environment a child starts with. HOME is the user's own home when it is a folder that user
   * owns (spiderplane-run's), else the job's work folder (nobody's /nonexistent). A daemon that runs
   * spiders as itself keeps its HOME, so its pip.conf and .npmrc still apply.
   */
  baseEnv(workDir: string): Record<string, string> {
    return spiderBaseEnv(this.daemonEnv, this.envConfig, this.home(workDir));
  }

  private home(workDir: string): string {
    const { uid, home } = this.identity;
    if (uid === null) return this.daemonEnv.HOME ?? home ?? workDir;
    if (home) {
      try {
        const st = statSync(home);
        if (st.isDirectory() && st.uid === uid) return home;
      } catch {
        // no such home (nobody's /nonexistent)
      }
    }
    return workDir;
  }

  /** Makes a folder the child writes into (the project's work folder, an items folder) its own. */
  ownFolder(dir: string): void {
    const who = this.who;
    if (who) giveToRunAs(dir, who);
  }

  /** Makes an existing file the child appends to its own. */
  ownFile(file: string): void {
    const who = this.who;
    if (who) giveFileToRunAs(file, who);
  }
}

/**
 * Which Scrapy settings given on schedule.json (`setting=NAME=VALUE`) may name a local path, and
 * where. Guarantee: a job scheduled through the API cannot make Scrapy write outside its work
 * folder (DATA_DIR/work/PROJECT, the cwd of the job) nor take its log away from the slave.
 *
 *  - LOG_FILE is refused whatever its value: the slave keeps every job's log itself (Scrapy's
 *    stderr goes to logs/PROJECT/SPIDER/JOB.log, served as log_url); a LOG_FILE would leave that
 *    log empty and hide the job's errors and stats from the slave.
 *  - JOBDIR, HTTPCACHE_DIR, FEED_TEMPDIR: local paths; relative ones are taken from the work folder.
 *  - FEED_URI, FILES_STORE, IMAGES_STORE: a URI with a scheme other than file: (s3://, gs://, ftp://…)
 *    writes nowhere on this machine and is accepted; a plain path or file:// URI must stay inside.
 *  - In a local FEED_URI, only the %(time)s, %(batch_time)s and %(batch_id)…d placeholders are
 *    accepted: the others take spider attributes, which spider arguments (-a) can set to '../..'.
 *  - FEEDS is not checked here: the slave always replaces it with the job's own items feed.
 * The check is lexical (`..` resolved, symlinks not followed): the run-as user's permissions are
 * the boundary against a spider's own code; this keeps whoever may schedule from using settings
 * as a write-anywhere primitive. Pure: no I/O.
 */
import { isAbsolute, relative, resolve } from 'node:path';

export class SettingPathError extends Error {}

const REFUSED = new Set(['LOG_FILE']);
const LOCAL_PATH = new Set(['JOBDIR', 'HTTPCACHE_DIR', 'FEED_TEMPDIR']);
const PATH_OR_URI = new Set(['FEED_URI', 'FILES_STORE', 'IMAGES_STORE']);
/** FEED_URI placeholders filled by Scrapy itself (no spider attribute). */
const SAFE_PLACEHOLDER = /^%\((time|batch_time)\)s$|^%\(batch_id\)0?\d*d$/;

/** The setting names this module checks (for docs and tests). */
export const CHECKED_SETTINGS: readonly string[] = [...REFUSED, ...LOCAL_PATH, ...PATH_OR_URI];

function inside(workDir: string, path: string): boolean {
  const rel = relative(workDir, resolve(workDir, path));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** file:///x → /x; a URI with another scheme → null (not local); a plain path → itself. */
function localPart(value: string): string | null {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(value);
  if (!m) return value;
  if (m[1]!.toLowerCase() !== 'file') return null;
  try {
    return decodeURIComponent(new URL(value).pathname);
  } catch {
    return value.slice(m[0].length);
  }
}

/**
 * Throws SettingPathError with a Scrapyd-style message for the first setting that is refused.
 * `workDir` is the job's work folder (absolute).
 */
export function checkSettingPaths(settings: Readonly<Record<string, string>>, workDir: string): void {
  for (const [name, value] of Object.entries(settings)) {
    const bad = (why: string) => new SettingPathError(`setting '${name}=${value}' is invalid: ${why}`);
    if (REFUSED.has(name)) {
      throw bad('the slave keeps each job\'s log itself (see log_url), so LOG_FILE is not accepted; LOG_LEVEL, LOG_FORMAT and LOG_ENABLED still apply');
    }
    if (!LOCAL_PATH.has(name) && !PATH_OR_URI.has(name)) continue;
    if (value.includes('\0')) throw bad('it contains a NUL byte');
    const path = PATH_OR_URI.has(name) ? localPart(value) : value;
    if (path === null) continue; // s3://, gs://, ftp://…: nothing written on this machine
    if (path.trim() === '') {
      if (LOCAL_PATH.has(name) && value === '') continue; // empty = Scrapy's "not set"
      throw bad('the path is empty');
    }
    if (name === 'FEED_URI') {
      for (const p of path.match(/%\([^)]*\)[#0 +-]*\d*(?:\.\d+)?[A-Za-z]/g) ?? []) {
        if (!SAFE_PLACEHOLDER.test(p)) throw bad(`the placeholder ${p} takes a spider attribute, which spider arguments can set; only %(time)s, %(batch_time)s and %(batch_id)d are accepted in a local feed path`);
      }
    }
    if (!inside(workDir, path)) {
      throw bad(`${name} must stay inside the job's work folder ${workDir} (a relative path is taken from there; '..' may not leave it)`);
    }
  }
}

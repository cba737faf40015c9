/**
 * File modes of a slave's data folder, so spiders (the run-as user) reach what they need and
 * nothing of the daemon's. Guarantee, once prepareDataDir has run:
 *   DATA_DIR          0711 daemon  spiders may pass through, not list
 *   slave.db(-wal,-shm) 0600 daemon  never readable by spiders
 *   logs/             0700 daemon  logs are opened by the daemon and handed to the spider as fds
 *   eggs/ packages/   0711 daemon  packages readable (0644/0755 inside), not writable, by spiders
 *   items/ work/      0711 daemon  each items/PROJECT/SPIDER and work/PROJECT is owned by the run-as user
 *   envs/             0711 daemon  each environment's build folder is owned by the run-as user (pip/npm build as it)
 * and the daemon refuses to start when a parent folder of DATA_DIR is closed to the run-as user.
 */
import { lchownSync, lstatSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { setMode } from '../../common/private_files.ts';

export class DataDirError extends Error {}

export interface FolderStat { mode: number; uid: number; gid: number }
export interface Who { uid: number; gid: number; name: string }

/** Whether `who` (primary group only: spawn clears supplementary groups) may enter a folder. */
export function canTraverse(st: FolderStat, who: Who): boolean {
  if (who.uid === 0) return true;
  if (st.uid === who.uid) return (st.mode & 0o100) !== 0;
  if (st.gid === who.gid) return (st.mode & 0o010) !== 0;
  return (st.mode & 0o001) !== 0;
}

/** Every folder from / down to (not including) `path`, outermost first. */
export function ancestors(path: string): string[] {
  const out: string[] = [];
  for (let d = dirname(path); ; d = dirname(d)) {
    out.unshift(d);
    if (d === dirname(d)) return out;
  }
}

/** The first parent of `dir` that `who` cannot enter, with the message that names it and the fix; null when all are open. */
export function unreachableReason(dir: string, who: Who, stat: (p: string) => FolderStat): string | null {
  for (const folder of ancestors(dir)) {
    const st = stat(folder);
    if (canTraverse(st, who)) continue;
    return `the spiders' user ${who.name} (uid ${who.uid}) cannot enter ${folder} (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}, owner uid ${st.uid}), so it cannot reach the data folder ${dir}. ` +
      `Fix: choose a data folder it can reach (e.g. --data-dir /var/lib/spiderplane/slave), or let it pass through with: chmod o+x ${folder}`;
  }
  return null;
}

const DAEMON_ONLY = ['logs'];
const PASS_THROUGH = ['eggs', 'packages', 'items', 'work', 'envs'];

/** Creates nothing; sets the modes above on an existing data folder and refuses an unreachable one. */
export function prepareDataDir(dataDir: string, runAs: Who | null): void {
  const real = realpathSync(dataDir);
  if (runAs) {
    const why = unreachableReason(real, runAs, (p) => statSync(p));
    if (why) throw new DataDirError(why);
  }
  setMode(real, 0o711);
  for (const d of DAEMON_ONLY) setMode(join(real, d), 0o700);
  for (const d of PASS_THROUGH) setMode(join(real, d), 0o711);
}

/**
 * Hands a spider-writable folder to the run-as user. A folder that belonged to someone else
 * (an older daemon that ran spiders as root, or another run-as user) is handed over with its
 * content once. Safe against a spider racing it: children are handed over before their parent
 * (so the spider gains write access to a folder only once its content is done), subtrees the
 * spider already owns are not entered, and symlinks are changed themselves, never followed.
 */
export function giveToRunAs(dir: string, who: Who): void {
  const st = lstatSync(dir);
  if (st.isSymbolicLink() || !st.isDirectory()) throw new DataDirError(`${dir} is not a folder`);
  if (st.uid === who.uid && st.gid === who.gid) return;
  chownTree(dir, who);
}

function chownTree(path: string, who: Who): void {
  const st = lstatSync(path);
  if (st.uid === who.uid) {
    if (st.gid !== who.gid) lchownSync(path, who.uid, who.gid);
    return;
  }
  if (st.isDirectory()) for (const name of readdirSync(path)) chownTree(path + sep + name, who);
  lchownSync(path, who.uid, who.gid);
}

/** A file the spider appends to (an items file reused by a job id), handed to the run-as user. */
export function giveFileToRunAs(file: string, who: Who): void {
  try {
    const st = lstatSync(file);
    // lchown: a symlink planted in place of the file is changed itself, its target never.
    if (st.uid !== who.uid || st.gid !== who.gid) lchownSync(file, who.uid, who.gid);
  } catch {
    // no such file yet: the spider creates it
  }
}

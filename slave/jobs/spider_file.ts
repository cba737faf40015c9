/**
 * Opens a file that a spider may have written (items files, anything under items/), for the daemon
 * to read. Spiders run as another user and own their items folders, so they can put a symlink, a
 * FIFO or a device where an items file is expected; the daemon must never read through it (it
 * would serve /etc/shadow or slave.db over /items/, or hang on a FIFO). Guarantee: the handle is a
 * regular file whose real path lies inside `root` — checked on the open descriptor itself
 * (/proc/self/fd), so a symlink swapped in at any level between a check and the open is caught.
 */
import { constants } from 'node:fs';
import { open, readlink, realpath, type FileHandle } from 'node:fs/promises';
import { sep } from 'node:path';

/** A regular file inside root, opened read-only; null for anything else (or nothing there). */
export async function openSpiderFile(path: string, root: string): Promise<FileHandle | null> {
  let fh: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; no effect on regular files.
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const [info, real, realRoot] = await Promise.all([fh.stat(), readlink(`/proc/self/fd/${fh.fd}`), realpath(root)]);
    // nlink 1: a hard link a spider made to a file of the daemon's (hosts without
    // protected_hardlinks) is not served as its items.
    if (info.isFile() && info.nlink === 1 && real.startsWith(realRoot + sep)) return fh;
  } catch {
    // no /proc, or root gone: refuse
  }
  await fh.close();
  return null;
}

/** Whether a folder's real path lies inside root (root itself included): no symlinked folder leads out. */
export async function folderInside(path: string, root: string): Promise<boolean> {
  try {
    const [real, realRoot] = await Promise.all([realpath(path), realpath(root)]);
    return real === realRoot || real.startsWith(realRoot + sep);
  } catch {
    return false;
  }
}

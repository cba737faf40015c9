import { constants } from 'node:fs';
import { lchown, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

// Trees the spiders' (run-as) user wrote — an environment pip or npm just built, a forkserver's
// folder — taken back by the root daemon.
//
// Threat: while root walks such a tree by path, the run-as user can swap an entry for a symlink
// to /etc/… between root's check and its chown/chmod/unlink, and root then changes or deletes a
// file of the host. Guarantee: lockTree takes each folder BEFORE listing it (so nobody but root
// can add, rename or swap its entries afterwards) and changes every entry through a handle opened
// with O_NOFOLLOW, so a symlink is never followed; symlinks themselves are lchown'ed, other
// special files removed. Once a tree is locked, a recursive rm by root is safe.

const { O_RDONLY, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK } = constants;
/** rwxr-xr-x at most: no write for group or others, no setuid/setgid/sticky. */
const KEEP_BITS = 0o755;

async function take(fh: FileHandle, uid: number, gid: number): Promise<void> {
  const st = await fh.stat();
  await fh.chown(uid, gid);
  await fh.chmod(st.mode & KEEP_BITS);
}

/**
 * Makes every entry of `dir` owned by uid:gid and unwritable by anyone else. `dir` itself must sit
 * in a folder the run-as user cannot write (else it could be swapped before it is opened: that
 * open fails with ELOOP on a symlink rather than following it).
 */
export async function lockTree(dir: string, uid: number, gid: number): Promise<void> {
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    const fh = await open(d, O_RDONLY | O_NOFOLLOW | O_DIRECTORY);
    try {
      await take(fh, uid, gid);
    } finally {
      await fh.close();
    }
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        stack.push(p);
      } else if (e.isSymbolicLink()) {
        await lchown(p, uid, gid);
      } else if (e.isFile()) {
        const f = await open(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
        try {
          const st = await f.stat();
          // A hard link to a file of someone else (hosts without protected_hardlinks): drop the
          // link rather than change that file.
          if (st.nlink > 1 && st.uid !== uid) await rm(p, { force: true });
          else await take(f, uid, gid);
        } finally {
          await f.close();
        }
      } else {
        await rm(p, { force: true }); // sockets, FIFOs, devices: nothing a daemon keeps
      }
    }
  }
}

/** Locks a tree the run-as user may have written, then removes it; a symlink in its place is just unlinked. */
export async function removeSpiderTree(dir: string, uid: number, gid: number): Promise<void> {
  try {
    await lockTree(dir, uid, gid);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ELOOP' || code === 'ENOTDIR') { await rm(dir, { force: true }); return; } // not a folder: unlink it, follow nothing
    throw e;
  }
  await rm(dir, { recursive: true, force: true });
}

/**
 * Gives a tree root made (a copy of a package) to the run-as user: children before their folder,
 * so every folder stays root's — its entries unswappable — until all inside it is given; lchown
 * never follows a symlink.
 */
export async function giveTree(dir: string, uid: number, gid: number): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await giveTree(p, uid, gid);
    else await lchown(p, uid, gid);
  }
  await lchown(dir, uid, gid);
}

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setMode } from '../../common/private_files.ts';

/**
 * The folder where spider keepers listen (unix sockets, one per running job, named by the job's
 * uid) and leave their exit status: the daemon's own (0700), so no spider can reach a keeper or
 * forge an exit status. A unix socket path must fit in ~107 bytes: a data dir too deep for that
 * is refused at start rather than failing at the first re-adoption.
 */
export function prepareKeepersDir(dataDir: string): string {
  const dir = join(dataDir, 'keepers');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  setMode(dir, 0o700);
  const longest = Buffer.byteLength(join(dir, '9999999999.sock.tmp'));
  if (longest > 104) throw new Error(`the data dir ${dataDir} is too deep for keeper sockets (${longest} bytes; unix sockets allow 104): choose a shorter --data-dir`);
  return dir;
}

/** The lease window a master last told (kept across restarts, so orphans adopted before any master speaks keep their window). */
export function readToldWindow(keepersDir: string): number | null {
  try {
    const ms = Number(readFileSync(join(keepersDir, 'lease-window-ms'), 'utf8').trim());
    return Number.isFinite(ms) && ms > 0 ? ms : null;
  } catch {
    return null;
  }
}

export function writeToldWindow(keepersDir: string, ms: number): void {
  try { writeFileSync(join(keepersDir, 'lease-window-ms'), String(ms), { mode: 0o600 }); } catch { /* kept in memory anyway */ }
}

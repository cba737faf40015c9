/**
 * Files and folders only the daemon's user may read: its SQLite databases (and their WAL/SHM
 * files) and the master's data folder. Spiders run as another user (see slave/runner/run_as.ts),
 * so these modes are what keeps the databases — users, sessions, tokens — away from them.
 */
import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';

/** chmod that warns instead of failing on a file the daemon does not own (a shared folder). */
export function setMode(path: string, mode: number): void {
  try {
    chmodSync(path, mode);
  } catch (e) {
    console.warn(`[spiderplane] could not set mode ${mode.toString(8)} on ${path}: ${(e as Error).message}`);
  }
}

/**
 * Before opening a SQLite database: creates it empty with mode 0600 (SQLite gives its WAL and SHM
 * files the database file's mode), and tightens an existing one with its companions.
 */
export function privateDatabaseFile(dbFile: string): void {
  if (!existsSync(dbFile)) closeSync(openSync(dbFile, 'a', 0o600));
  for (const f of [dbFile, `${dbFile}-wal`, `${dbFile}-shm`, `${dbFile}-journal`]) {
    if (existsSync(f)) setMode(f, 0o600);
  }
}

/** A folder only its owner may enter. */
export function privateDir(dir: string): void {
  setMode(dir, 0o700);
}

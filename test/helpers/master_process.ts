// Starts a real master as a child process on a free loopback port, and talks to its /api.
import { join } from 'node:path';
import { tempDir } from './slave_process.ts';
import { openMasterStore, parseDatabaseLocation } from '../../master/store/open_store.ts';
import type { SqlDb } from '../../master/store/sql_db.ts';
import { startDaemon, type DaemonHandle } from './daemon_process.ts';
import { freshDatabaseUrl, mastersOnPostgres } from './postgres.ts';

export const ADMIN = { user: 'admin', password: 'admin-password-1' };
export const CLUSTER_TOKEN = 'test-cluster-token';

export interface MasterHandle extends DaemonHandle {
  dataDir: string;
  /** Its --database: sqlite:PATH or a postgres:// URL (see openDatabaseOf). */
  database: string;
  /** JSON request to /api as the admin (or with the given Authorization header). */
  api: <T = Record<string, unknown>>(method: string, path: string, body?: unknown, auth?: string) => Promise<{ status: number; body: T }>;
}

const databases = new Map<string, string>();

/**
 * The --database a test master on this data folder uses: its SQLite file, or (when the suite runs
 * on PostgreSQL) a fresh database, the same one each time for the same folder — so a test can fill
 * it before the master starts, and a restarted master finds its data again.
 */
export async function databaseOfDataDir(dataDir: string): Promise<string> {
  if (!mastersOnPostgres) return `sqlite:${join(dataDir, 'master.db')}`;
  let url = databases.get(dataDir);
  if (!url) {
    url = await freshDatabaseUrl();
    databases.set(dataDir, url);
  }
  return url;
}

export const basic = (user: string, password: string) => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');

export async function startMaster(opts: { dataDir?: string; args?: string[]; env?: Record<string, string> } = {}): Promise<MasterHandle> {
  const dataDir = opts.dataDir ?? tempDir('spiderplane-master-');
  // The master suite's second run puts every master on PostgreSQL; a master restarted on the same
  // data folder finds its database again.
  const args = [...(opts.args ?? [])];
  if (mastersOnPostgres && !args.includes('--database')) args.push('--database', await databaseOfDataDir(dataDir));
  const d = await startDaemon('master', 'run_master.ts', ['--port', '0', '--data-dir', dataDir, '--admin-user', ADMIN.user, '--admin-password', ADMIN.password,
    '--cluster-token', CLUSTER_TOKEN, ...args], opts.env, /\[spiderplane-master\] listening on (http:\/\/[^\s]+)/);
  const url = d.url;
  const api = async <T,>(method: string, path: string, body?: unknown, auth = basic(ADMIN.user, ADMIN.password)) => {
    const r = await fetch(url + path, {
      method, headers: { Authorization: auth, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let parsed: unknown = text;
    try { parsed = JSON.parse(text); } catch { /* plain text */ }
    return { status: r.status, body: parsed as T };
  };
  const i = args.lastIndexOf('--database');
  const database = i >= 0 ? args[i + 1]! : `sqlite:${join(dataDir, 'master.db')}`;
  return { ...d, dataDir, database, api };
}

/** The master's database, opened by the test (SQLite or PostgreSQL alike): close it when done. */
export function openDatabaseOf(master: { database: string; dataDir: string }): Promise<SqlDb> {
  return openMasterStore(parseDatabaseLocation(master.database, master.dataDir));
}

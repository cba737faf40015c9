// Starts a real master as a child process on a free loopback port, and talks to its /api.
import { tempDir } from './slave_process.ts';
import { startDaemon, type DaemonHandle } from './daemon_process.ts';

export const ADMIN = { user: 'admin', password: 'admin-password-1' };
export const CLUSTER_TOKEN = 'test-cluster-token';

export interface MasterHandle extends DaemonHandle {
  dataDir: string;
  /** JSON request to /api as the admin (or with the given Authorization header). */
  api: <T = Record<string, unknown>>(method: string, path: string, body?: unknown, auth?: string) => Promise<{ status: number; body: T }>;
}

export const basic = (user: string, password: string) => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');

export async function startMaster(opts: { dataDir?: string; args?: string[]; env?: Record<string, string> } = {}): Promise<MasterHandle> {
  const dataDir = opts.dataDir ?? tempDir('spiderplane-master-');
  const d = await startDaemon('master', 'run_master.ts', ['--port', '0', '--data-dir', dataDir, '--admin-user', ADMIN.user, '--admin-password', ADMIN.password,
    '--cluster-token', CLUSTER_TOKEN, ...(opts.args ?? [])], opts.env, /\[spiderplane-master\] listening on (http:\/\/[^\s]+)/);
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
  return { ...d, dataDir, api };
}

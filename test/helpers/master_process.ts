// Starts a real master as a child process on a free loopback port, and talks to its /api.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, tempDir } from './slave_process.ts';


export const ADMIN = { user: 'admin', password: 'admin-password-1' };
export const CLUSTER_TOKEN = 'test-cluster-token';

export interface MasterHandle {
  url: string;
  dataDir: string;
  proc: ChildProcess;
  output: () => string;
  stop: () => Promise<number | null>;
  kill9: () => Promise<void>;
  /** JSON request to /api as the admin (or with the given Authorization header). */
  api: <T = Record<string, unknown>>(method: string, path: string, body?: unknown, auth?: string) => Promise<{ status: number; body: T }>;
}

export const basic = (user: string, password: string) => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');

export async function startMaster(opts: { dataDir?: string; args?: string[]; env?: Record<string, string> } = {}): Promise<MasterHandle> {
  const dataDir = opts.dataDir ?? tempDir('spiderplane-master-');
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'run_master.ts'), '--port', '0', '--data-dir', dataDir, '--admin-user', ADMIN.user, '--admin-password', ADMIN.password,
    '--cluster-token', CLUSTER_TOKEN, ...(opts.args ?? [])], {
    cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`master did not start in 30 s:\n${out}`)), 30_000);
    const check = () => {
      const m = /\[spiderplane-master\] listening on (http:\/\/[^\s]+)/.exec(out);
      if (m) { clearTimeout(timer); res(m[1]!); }
    };
    proc.stdout!.on('data', check);
    void exited.then((code) => { clearTimeout(timer); rej(new Error(`master exited with ${code} before listening:\n${out}`)); });
  });
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
  return {
    url, dataDir, proc, output: () => out, api,
    stop: async () => { proc.kill('SIGTERM'); return exited; },
    kill9: async () => { process.kill(-proc.pid!, 'SIGKILL'); await exited; },
  };
}

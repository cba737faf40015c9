// Starts a real slave daemon as a child process on a free loopback port, and talks to it over HTTP.
import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, startDaemon, type DaemonHandle } from './daemon_process.ts';

export { ROOT };

/** A running slave; kill9 leaves its spiders running as orphans. */
export interface SlaveHandle extends DaemonHandle {
  dataDir: string;
}

/**
 * A fresh folder under the temp dir. mkdtemp makes it 0700; it is opened to 0755 because daemons
 * running as root run spiders as another user, who must pass through every parent of a data folder
 * (a daemon refuses to start otherwise), and tests nest data folders inside these.
 */
export function tempDir(prefix = 'spiderplane-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

/**
 * SPIDERPLANE_TEST_FORKSERVER=0 runs every test slave with --no-forkserver (the runner suite runs
 * both ways: npm run test:spawned), except one a test starts with --forkserver on purpose.
 */
const forkserverArgs = (args: string[]) => (process.env.SPIDERPLANE_TEST_FORKSERVER === '0' && !args.includes('--forkserver') ? ['--no-forkserver'] : []);

export async function startSlave(opts: { dataDir?: string; args?: string[]; env?: Record<string, string> } = {}): Promise<SlaveHandle> {
  const dataDir = opts.dataDir ?? tempDir();
  const d = await startDaemon('slave', 'run_slave.ts', ['--port', '0', '--data-dir', dataDir, '--node-name', 'testnode', ...forkserverArgs(opts.args ?? []), ...(opts.args ?? [])], opts.env, /listening on (http:\/\/[^\s]+)/);
  return { ...d, dataDir };
}

export type Json = Record<string, unknown> & { status?: string; message?: string };

export async function getJson(base: string, path: string, params: Record<string, string> = {}, headers: Record<string, string> = {}): Promise<Json> {
  const qs = new URLSearchParams(params).toString();
  const r = await fetch(`${base}${path}${qs ? '?' + qs : ''}`, { headers });
  return (await r.json()) as Json;
}

/** POST form-urlencoded; pairs may repeat a name (setting=…). */
export async function postForm(base: string, path: string, pairs: Array<[string, string]> | Record<string, string>, headers: Record<string, string> = {}): Promise<Json> {
  const body = new URLSearchParams(Array.isArray(pairs) ? pairs : Object.entries(pairs));
  const r = await fetch(`${base}${path}`, { method: 'POST', body, headers });
  return (await r.json()) as Json;
}

export async function uploadEgg(base: string, project: string, version: string, egg: Buffer | string, headers: Record<string, string> = {}): Promise<Json> {
  const form = new FormData();
  form.set('project', project);
  form.set('version', version);
  if (typeof egg === 'string') form.set('egg', egg);
  else form.set('egg', new Blob([new Uint8Array(egg)]), 'project.egg');
  const r = await fetch(`${base}/addversion.json`, { method: 'POST', body: form, headers });
  return (await r.json()) as Json;
}

/** Polls until check returns a value other than undefined (or throws after timeoutMs). */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface ListedJob { id: string; project: string; spider: string; pid?: number; start_time?: string; end_time?: string; log_url?: string | null; items_url?: string | null }

export async function jobState(base: string, job: string): Promise<string | null> {
  return (await getJson(base, '/status.json', { job })).currstate as string | null;
}

export async function waitForState(base: string, job: string, state: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(`job ${job} to be ${state}`, async () => ((await jobState(base, job)) === state ? true : undefined), timeoutMs);
}

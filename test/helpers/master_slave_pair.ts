// A real master with one real slave joined to it, and the small /api calls the master tests share.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startMaster, basic, ADMIN, CLUSTER_TOKEN, type MasterHandle } from './master_process.ts';
import { startSlave, waitFor, type SlaveHandle } from './slave_process.ts';
import { buildNodePackage } from './fixtures.ts';

/** Short thresholds so node state changes are quick. */
export const FAST_MASTER_ARGS = ['--heartbeat-interval', '0.5', '--heartbeat-timeout', '2', '--offline-after', '3'];

export interface NodeView { name: string; url: string; status: string; draining: boolean; [k: string]: unknown }
export interface RunView { job: string; project: string; spider: string; version: string | null; node: string | null; state: string; outcome: string | null; schedule_id: number | null; args: Record<string, string>; created_at: number; [k: string]: unknown }

export async function joinSlave(master: MasterHandle, nodeName: string, args: string[] = []): Promise<SlaveHandle> {
  const slave = await startSlave({ args: ['--master', master.url, '--cluster-token', CLUSTER_TOKEN, '--node-name', nodeName, ...args] });
  await waitNodeStatus(master, nodeName, 'online');
  return slave;
}

export async function waitNodeStatus(master: MasterHandle, name: string, status: string, timeoutMs = 60_000): Promise<NodeView> {
  return waitFor(`node ${name} to be ${status}`, async () => {
    const r = await master.api<{ nodes: NodeView[] }>('GET', '/api/nodes');
    const n = r.body.nodes?.find((x) => x.name === name);
    return n && n.status === status ? n : undefined;
  }, timeoutMs, 200);
}

/** POST /api/projects/:project/versions as multipart (field `egg` + `version`). */
export async function uploadVersion(
  master: MasterHandle, project: string, version: string | null, data: Buffer | null,
  opts: { auth?: string; wait?: boolean; field?: string } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const form = new FormData();
  if (version !== null) form.set('version', version);
  if (data !== null) form.set(opts.field ?? 'egg', new Blob([new Uint8Array(data)]), `${project}.zip`);
  const r = await fetch(`${master.url}/api/projects/${encodeURIComponent(project)}/versions${opts.wait === false ? '' : '?wait=1'}`, {
    method: 'POST', body: form, headers: { Authorization: opts.auth ?? basic(ADMIN.user, ADMIN.password) },
  });
  const text = await r.text();
  let body: Record<string, unknown>;
  try { body = JSON.parse(text) as Record<string, unknown>; } catch { body = { text }; }
  return { status: r.status, body };
}

/** Uploads the Node fixture package as project/version and checks every online node took it. */
export async function deployNodePackage(master: MasterHandle, workDir: string, project = 'gen', version = '1'): Promise<void> {
  const data = await readFile(await buildNodePackage(workDir));
  const r = await uploadVersion(master, project, version, data);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const targets = (r.body.deployment as { targets: Array<{ node: string; state: string }> }).targets;
  assert.ok(targets.length >= 1, `deployed to no node: ${JSON.stringify(r.body)}`);
  for (const t of targets) assert.equal(t.state, 'ok', JSON.stringify(r.body));
}

export async function waitRunState(master: MasterHandle, job: string, pred: (r: RunView) => boolean, what: string, timeoutMs = 60_000): Promise<RunView> {
  return waitFor(`run ${job} ${what}`, async () => {
    const r = await master.api<{ run: RunView }>('GET', `/api/runs/${job}`);
    return r.status === 200 && pred(r.body.run) ? r.body.run : undefined;
  }, timeoutMs, 200);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

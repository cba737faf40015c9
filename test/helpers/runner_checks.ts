// Helpers for the runner tests (test/slave_runner.test.ts): job records, process probes, and a
// kill -9 that really kills the daemon.
import assert from 'node:assert/strict';
import type { SlaveJob } from '../../common/types.ts';
import { readFileSync } from 'node:fs';
import { getJson, postForm, waitFor, type Json, type SlaveHandle } from './slave_process.ts';

/** One job as /jobs.json reports it. */
export type JobRecord = SlaveJob;

export interface ListJobs {
  pending: Array<{ id: string; project: string; spider: string }>;
  running: Array<{ id: string; project: string; spider: string; pid: number; start_time: string; log_url: string | null; items_url: string | null }>;
  finished: Array<{ id: string; project: string; spider: string; start_time: string | null; end_time: string | null; log_url: string | null; items_url: string | null }>;
}

function ok(j: Json, what: string): Json {
  assert.equal(j.status, 'ok', `${what} failed: ${JSON.stringify(j)}`);
  return j;
}

export async function schedule(url: string, pairs: Array<[string, string]>): Promise<string> {
  const j = ok(await postForm(url, '/schedule.json', pairs), `schedule ${JSON.stringify(pairs)}`);
  return j.jobid as string;
}

export async function cancel(url: string, project: string, job: string, signal?: string): Promise<string | null> {
  const pairs: Array<[string, string]> = [['project', project], ['job', job]];
  if (signal) pairs.push(['signal', signal]);
  const j = ok(await postForm(url, '/cancel.json', pairs), `cancel ${job}`);
  return j.prevstate as string | null;
}

export async function listJobs(url: string, project?: string): Promise<ListJobs> {
  return ok(await getJson(url, '/listjobs.json', project ? { project } : {}), 'listjobs') as unknown as ListJobs;
}

export async function jobsJson(url: string, params: Record<string, string> = {}): Promise<JobRecord[]> {
  return ok(await getJson(url, '/jobs.json', { limit: '10000', ...params }), 'jobs.json').jobs as JobRecord[];
}

export async function job(url: string, id: string): Promise<JobRecord | undefined> {
  const rows = await jobsJson(url, { job: id });
  return rows[0];
}

export async function daemonStatus(url: string): Promise<{ pending: number; running: number; finished: number }> {
  return ok(await getJson(url, '/daemonstatus.json'), 'daemonstatus') as unknown as { pending: number; running: number; finished: number };
}

/** Waits until the job is running (and has a pid). */
export async function waitRunning(url: string, id: string, timeoutMs = 60_000): Promise<JobRecord> {
  return waitFor(`job ${id} running`, async () => {
    const r = await job(url, id);
    return r && r.state === 'running' && r.pid ? r : undefined;
  }, timeoutMs, 50);
}

/**
 * Waits until the job is finished AND its record is complete (error_count is filled in once the
 * log was read to its end). With complete=false, only the state is awaited.
 */
export async function waitFinished(url: string, id: string, opts: { timeoutMs?: number; complete?: boolean } = {}): Promise<JobRecord> {
  const complete = opts.complete ?? true;
  return waitFor(`job ${id} finished${complete ? ' and recorded' : ''}`, async () => {
    const r = await job(url, id);
    if (!r || r.state !== 'finished') return undefined;
    if (complete && r.error_count === null) return undefined;
    return r;
  }, opts.timeoutMs ?? 60_000, 100);
}

export async function fetchText(url: string, path: string): Promise<{ status: number; text: string }> {
  const r = await fetch(url + path);
  return { status: r.status, text: await r.text() };
}

export function jsonLines(text: string): Array<Record<string, unknown>> {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Waits until the job's log (served over HTTP) matches re; returns the log text. */
export async function waitForLog(url: string, project: string, spider: string, id: string, re: RegExp, timeoutMs = 60_000): Promise<string> {
  return waitFor(`log of ${id} to match ${re}`, async () => {
    const r = await fetchText(url, `/logs/${project}/${spider}/${id}.log`);
    return r.status === 200 && re.test(r.text) ? r.text : undefined;
  }, timeoutMs, 100);
}

/** "YYYY-MM-DD HH:MM:SS[.ffffff]" (local time, Scrapyd's format) -> epoch seconds. */
export function parseScrapydTime(s: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/.exec(s);
  assert.ok(m, `not a Scrapyd time: ${s}`);
  const [, y, mo, d, h, mi, se, frac] = m;
  const base = new Date(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(se)).getTime() / 1000;
  return base + (frac ? Number(frac.padEnd(6, '0')) / 1e6 : 0);
}

/** The process state letter from /proc/PID/stat, or null when there is no such process. */
export function procState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? null;
  } catch {
    return null;
  }
}

/** Alive and not a zombie (orphans re-parented to a PID 1 that never reaps stay zombies). */
export function isAlive(pid: number): boolean {
  const s = procState(pid);
  return s !== null && s !== 'Z' && s !== 'X';
}

export async function waitGone(pid: number, timeoutMs = 60_000): Promise<void> {
  await waitFor(`process ${pid} to end`, () => (isAlive(pid) ? undefined : true), timeoutMs, 50);
}

/** The pid of the daemon itself. */
export function daemonPid(h: SlaveHandle): number {
  // The daemon runs as plain `node` (its test bundle, or tsx's loader): the spawned process is the daemon itself.
  return h.proc.pid!;
}

/** A real kill -9 of the daemon: its spiders live on as orphans. */
export async function hardKill9(h: SlaveHandle): Promise<void> {
  if (h.proc.exitCode !== null || h.proc.signalCode !== null) return;
  const pid = h.proc.pid!;
  await h.kill9();
  await waitGone(pid);
}

/** Whether pid is now a spiderplane daemon or keeper (a reused pid), not a spider. */
export function isTestDaemon(pid: number): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return /run_master\.ts|run_slave\.ts|keeper\.mjs|tsx|node_modules/.test(cmd);
  } catch {
    return false;
  }
}

/** Kills a spider's process group (spiders run as group leaders) if it is still there. */
export function killGroup(pid: number): void {
  // Never 0 or 1 (a missing pid): process.kill(-0) would signal this test runner's own group.
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) return;
  // pid_max may be 32768: a spider that ended long ago may have left its pid to a daemon of a test
  // running beside this one (daemons lead their own groups too). Never kill one of those.
  if (isTestDaemon(pid)) return;
  try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
}

// Small tools for the daemon/ tests: free ports, the shipped env files with test values, waiting
// for a supervised child process to exit.
import { execFile, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './slave_process.ts';

export const DAEMON_DIR = join(ROOT, 'daemon');
export const execFileP = promisify(execFile);

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

/**
 * One of daemon/etc/*.env with some values replaced (and missing keys appended): the file the
 * daemons would read on a server, pointed at the test's ports and folders.
 */
export function envFileWith(shipped: string, values: Record<string, string>, out: string): void {
  const left = new Map(Object.entries(values));
  const lines = readFileSync(join(DAEMON_DIR, 'etc', shipped), 'utf8').split('\n').map((line) => {
    const m = /^([A-Z0-9_]+)=/.exec(line);
    if (!m || !left.has(m[1]!)) return line;
    const v = left.get(m[1]!)!;
    left.delete(m[1]!);
    return `${m[1]}=${v}`;
  });
  for (const [k, v] of left) lines.push(`${k}=${v}`);
  writeFileSync(out, lines.join('\n'));
}

/** Parses KEY=value lines of an environment file (systemd EnvironmentFile / sh syntax, simple values). */
export function readEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new Error(`not KEY=value: ${line}`);
    out[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
  }
  return out;
}

/** Resolves with the exit code once the child is gone (at once if it already is). */
export function exitOf(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((res) => proc.once('exit', (code) => res(code)));
}

/** Sends the signal to the process group of a detached child, ignoring "already gone". */
export function killGroupOf(proc: ChildProcess, signal: NodeJS.Signals): void {
  try { process.kill(-proc.pid!, signal); } catch { /* gone */ }
}

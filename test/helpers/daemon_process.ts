// Starts one of spiderplane's programs as a real child process on a free loopback port and waits
// until it says where it listens. Plain node running the program's test bundle (daemon_bundle.ts;
// no tsx CLI wrapper relaying signals), so the process is the program itself; its own process
// group, so kill9 takes it alone (spiders have process groups of their own).
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { programArgs, type BundledEntry } from './daemon_bundle.ts';

export const ROOT = resolve(import.meta.dirname, '..', '..');

export interface DaemonHandle {
  url: string;
  proc: ChildProcess;
  output: () => string;
  /** SIGTERM and wait for the exit; the exit code. */
  stop: () => Promise<number | null>;
  /** kill -9, and wait until it is gone. */
  kill9: () => Promise<void>;
}

/** `as` starts the program as another user (the test runs as root), e.g. to see a non-root daemon. */
export async function startDaemon(what: string, script: BundledEntry, args: string[], env: Record<string, string> | undefined, listening: RegExp, as?: { uid: number; gid: number }): Promise<DaemonHandle> {
  const proc = spawn(process.execPath, [...await programArgs(script), ...args], {
    // bcrypt at cost 4 (the masters' default is 12): every test master hashes and checks an admin's password.
    cwd: ROOT, env: { SPIDERPLANE_BCRYPT_ROUNDS: '4', ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...as,
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`${what} did not start in 90 s:\n${out}`)), 90_000);
    proc.stdout!.on('data', () => {
      const m = listening.exec(out);
      if (m) { clearTimeout(timer); res(m[1]!); }
    });
    void exited.then((code) => { clearTimeout(timer); rej(new Error(`${what} exited with ${code} before listening:\n${out}`)); });
  });
  return {
    url, proc, output: () => out,
    stop: async () => { proc.kill('SIGTERM'); return exited; },
    kill9: async () => { process.kill(-proc.pid!, 'SIGKILL'); await exited; },
  };
}

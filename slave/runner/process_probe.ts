import { readFileSync } from 'node:fs';

// Tells whether a pid still belongs to the process we started, using the start time the kernel
// keeps in /proc/PID/stat: a pid reused by an unrelated process has a different start time.

export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may contain spaces and parentheses: split after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return null; // exited, awaiting its reaper
    return fields[19] ?? null; // field 22: starttime
  } catch {
    return null;
  }
}

export function isSameProcess(pid: number, startTime: string | null): boolean {
  const now = processStartTime(pid);
  return now !== null && (startTime === null || now === startTime);
}

/** Signals a whole process group (spiders run as group leaders), ignoring a group that is gone. */
export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  }
}

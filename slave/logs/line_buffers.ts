// Bounded line storage for the log parser: a ring that never shifts an array, a capped block of
// record lines, and strings detached from the huge chunks they were sliced from.

import { MAX_RECORD_CHARS, MAX_RECORD_LINES } from './log_patterns.ts';

/**
 * Copies a string so it no longer references the (possibly huge) chunk it was sliced from;
 * V8 substrings keep their parent alive, which would defeat the memory bound for kept lines.
 */
export function detach(s: string): string {
  return s.length < 13 ? s : Buffer.from(s, 'utf8').toString('utf8'); // V8 slices only from 13 chars
}

export function joinLines(lines: string[]): string {
  return lines.length === 1 ? detach(lines[0]!) : lines.join('\n');
}

export const isBlank = (s: string): boolean => s.trim() === '';

/** Fixed-capacity FIFO without Array#shift's O(n) cost. */
export class Ring<T> {
  private buf: Array<T | undefined>;
  private start = 0;
  size = 0;
  constructor(private readonly capacity: number) {
    this.buf = new Array<T | undefined>(capacity);
  }
  push(v: T): T | undefined {
    let dropped: T | undefined;
    if (this.size === this.capacity) dropped = this.shift();
    this.buf[(this.start + this.size) % this.capacity] = v;
    this.size++;
    return dropped;
  }
  shift(): T | undefined {
    if (this.size === 0) return undefined;
    const v = this.buf[this.start];
    this.buf[this.start] = undefined;
    this.start = (this.start + 1) % this.capacity;
    this.size--;
    return v;
  }
  first(): T | undefined {
    return this.size ? this.buf[this.start] : undefined;
  }
  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.size; i++) out.push(this.buf[(this.start + i) % this.capacity] as T);
    return out;
  }
}

/** Lines of one multi-line record, capped; counts what was left out. */
export class LineBlock {
  lines: string[] = [];
  private chars = 0;
  private omitted = 0;
  add(line: string): void {
    if (this.lines.length >= MAX_RECORD_LINES || this.chars + line.length > MAX_RECORD_CHARS) {
      this.omitted++;
      return;
    }
    this.lines.push(line);
    this.chars += line.length + 1;
  }
  text(trimTrailingBlank = false): string {
    const lines = this.lines.slice();
    if (trimTrailingBlank) while (lines.length > 1 && isBlank(lines[lines.length - 1]!)) lines.pop();
    if (this.omitted) lines.push(`... (${this.omitted} more lines omitted)`);
    return joinLines(lines);
  }
}
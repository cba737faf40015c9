// Hostile HTTP bodies over a raw node:net socket: truncated multipart, endless chunked floods.
// What a browser or fetch would never send, byte for byte as an attacker would.
import { connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';

export interface RawAnswer {
  /** HTTP status of the answer, or null when the server closed without answering. */
  status: number | null;
  headers: string;
  body: string;
  /** Bytes of the request body written before the answer came or the socket closed. */
  sent: number;
  /** The server closed the connection (FIN or reset) rather than keeping it alive. */
  closed: boolean;
}

function parse(raw: Buffer): { status: number | null; headers: string; body: string } {
  const text = raw.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  return { status: m ? Number(m[1]) : null, headers: end < 0 ? text : text.slice(0, end), body: end < 0 ? '' : Buffer.from(text.slice(end + 4), 'latin1').toString('utf8') };
}

function open(url: string): Socket {
  const u = new URL(url);
  return connect(Number(u.port), u.hostname);
}

/**
 * Sends `head` (request line and headers, without the blank line), then body chunks from `next`
 * for as long as the server reads them, up to `maxBytes`; stops writing as soon as an answer
 * arrives. Resolves once the server closed the socket, or `settleMs` after a complete-looking answer.
 */
export function rawExchange(url: string, head: string, next: (i: number) => Buffer | null, opts: { maxBytes?: number; end?: 'close' | 'keep'; settleMs?: number } = {}): Promise<RawAnswer> {
  const maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
  return new Promise((resolve) => {
    const socket = open(url);
    const received: Buffer[] = [];
    let sent = 0;
    let answered = false;
    let done = false;
    let settle: NodeJS.Timeout | null = null;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      if (settle) clearTimeout(settle);
      socket.destroy();
      resolve({ ...parse(Buffer.concat(received)), sent, closed });
    };
    socket.on('data', (d: Buffer) => {
      received.push(d);
      answered = true;
      if (settle) clearTimeout(settle);
      settle = setTimeout(() => finish(false), opts.settleMs ?? 5_000);
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('connect', () => {
      socket.write(head.replace(/\r?\n/g, '\r\n').replace(/(\r\n)*$/, '') + '\r\n\r\n');
      let i = 0;
      const pumpBody = () => {
        while (!answered && !done && sent < maxBytes) {
          const chunk = next(i++);
          if (chunk === null) {
            if (opts.end === 'close') socket.end();
            return;
          }
          sent += chunk.length;
          if (!socket.write(chunk)) {
            socket.once('drain', pumpBody);
            return;
          }
        }
      };
      pumpBody();
    });
  });
}

/** One chunk of a chunked body (Transfer-Encoding: chunked framing). */
export function chunk(data: Buffer | string): Buffer {
  const b = typeof data === 'string' ? Buffer.from(data) : data;
  return Buffer.concat([Buffer.from(b.length.toString(16) + '\r\n'), b, Buffer.from('\r\n')]);
}

/** The daemon's resident memory in KiB (VmRSS of /proc/PID/status). */
export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

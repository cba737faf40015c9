// A real SMTP server on 127.0.0.1 (the smtp-server package) that keeps every mail it receives,
// with a small MIME reader for the parts nodemailer writes (quoted-printable or base64).
import { SMTPServer } from 'smtp-server';
import type { AddressInfo } from 'node:net';

export interface ReceivedMail {
  raw: string;
  from: string;
  to: string[];
  headers: Map<string, string>;
  subject: string;
  messageId: string;
  /** Alert notices the mail carries: ['fire:12', 'resolve:12'] (X-Spiderplane-Alerts). */
  alerts: string[];
  text: string;
  html: string;
}

function unfoldHeaders(block: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of block.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) out.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return out;
}

/** RFC 2047 encoded words (=?UTF-8?Q?...?= / =?UTF-8?B?...?=). */
function decodeWords(v: string): string {
  return v.replace(/=\?([^?]+)\?([QqBb])\?([^?]*)\?=\s*(?==\?)?/g, (_m, _cs: string, enc: string, data: string) =>
    enc.toUpperCase() === 'B' ? Buffer.from(data, 'base64').toString('utf8')
      : Buffer.from(data.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_x, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8'));
}

function decodeBody(body: string, encoding: string | undefined): string {
  const enc = (encoding ?? '7bit').toLowerCase();
  if (enc === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  if (enc === 'quoted-printable') {
    const bytes = body.replace(/=\r?\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_x, h: string) => String.fromCharCode(parseInt(h, 16)));
    return Buffer.from(bytes, 'latin1').toString('utf8');
  }
  return body;
}

function split(raw: string): { headers: Map<string, string>; body: string } {
  const i = raw.search(/\r?\n\r?\n/);
  if (i < 0) return { headers: unfoldHeaders(raw), body: '' };
  const sep = raw.slice(i).match(/^\r?\n\r?\n/)![0].length;
  return { headers: unfoldHeaders(raw.slice(0, i)), body: raw.slice(i + sep) };
}

/** Every leaf part of a message: content type and decoded text. */
function leaves(raw: string): Array<{ type: string; text: string }> {
  const { headers, body } = split(raw);
  const ct = headers.get('content-type') ?? 'text/plain';
  const boundary = /boundary="?([^";]+)"?/i.exec(ct)?.[1];
  if (/^multipart\//i.test(ct) && boundary) {
    const parts = body.split(`--${boundary}`).slice(1);
    return parts.filter((p) => !p.startsWith('--')).flatMap((p) => leaves(p.replace(/^\r?\n/, '')));
  }
  return [{ type: ct.split(';')[0]!.trim().toLowerCase(), text: decodeBody(body, headers.get('content-transfer-encoding')) }];
}

export function parseMail(raw: string, from: string, to: string[]): ReceivedMail {
  const { headers } = split(raw);
  const parts = leaves(raw);
  return {
    raw, from, to, headers,
    subject: decodeWords(headers.get('subject') ?? ''),
    messageId: headers.get('message-id') ?? '',
    alerts: (headers.get('x-spiderplane-alerts') ?? '').split(',').map((x) => x.trim()).filter((x) => x),
    text: parts.find((p) => p.type === 'text/plain')?.text ?? '',
    html: parts.find((p) => p.type === 'text/html')?.text ?? '',
  };
}

export interface SmtpHandle {
  port: number;
  mails: ReceivedMail[];
  /** Stops listening (the port is kept for start()). */
  stop: () => Promise<void>;
  /** Listens again on the same port. */
  start: () => Promise<void>;
  /**
   * While true, a mail whose data has fully arrived is not answered yet (the client waits for the
   * 250). It counts as delivered only when `release()` answers it on a connection still open: a
   * sender killed meanwhile has delivered nothing, as with a real server.
   */
  hold: boolean;
  /** Mails received in full and waiting for their answer. */
  readonly held: number;
  /** Of those, the ones whose sender is still connected. */
  readonly heldOpen: number;
  /** Answers every held mail; returns how many were delivered (their connection was still open). */
  release(): number;
}

/** An SMTP server that accepts everything (no TLS, no auth needed) and records each mail. */
export async function startSmtp(port = 0): Promise<SmtpHandle> {
  const mails: ReceivedMail[] = [];
  let server: SMTPServer | null = null;
  const waiting: Array<{ session: string; mail: ReceivedMail; answer: () => void }> = [];
  const closed = new Set<string>();
  const handle = { hold: false };
  let boundPort = port;
  const listen = async () => {
    const s = new SMTPServer({
      disabledCommands: ['STARTTLS'], authOptional: true, logger: false, banner: 'spiderplane test SMTP',
      onClose(session) { closed.add(session.id); },
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
          const mail = parseMail(Buffer.concat(chunks).toString('utf8'), from, session.envelope.rcptTo.map((r) => r.address));
          if (handle.hold) {
            waiting.push({ session: session.id, mail, answer: () => callback() });
            return;
          }
          mails.push(mail);
          callback();
        });
      },
    });
    s.on('error', () => undefined);
    await new Promise<void>((res, rej) => {
      const srv = s.server;
      srv.once('error', rej);
      s.listen(boundPort, '127.0.0.1', () => { srv.off('error', rej); res(); });
    });
    boundPort = (s.server.address() as AddressInfo).port;
    server = s;
  };
  await listen();
  return {
    get port() { return boundPort; },
    mails,
    stop: () => new Promise<void>((res) => {
      const s = server;
      server = null;
      if (!s) return res();
      // Close the listener and every open connection now (close() alone waits for clients).
      const conns = (s as unknown as { connections?: Set<{ close?: () => void }> }).connections; // smtp-server keeps its sessions here (not typed)
      for (const c of conns ?? []) c.close?.();
      s.close(() => res());
    }),
    start: listen,
    get hold() { return handle.hold; },
    set hold(v: boolean) { handle.hold = v; },
    get held() { return waiting.length; },
    get heldOpen() { return waiting.filter((w) => !closed.has(w.session)).length; },
    release() {
      let delivered = 0;
      for (const w of waiting.splice(0)) {
        if (closed.has(w.session)) continue;
        mails.push(w.mail);
        w.answer();
        delivered++;
      }
      return delivered;
    },
  };
}

// SMTP through nodemailer, and the text of alert mails (plain text and HTML parts).
import nodemailer from 'nodemailer';
import { hostname } from 'node:os';
import type { FiringRow } from './rule_store.ts';
import { formatFigure } from './rule_engine.ts';

export type SmtpSecure = 'none' | 'starttls' | 'tls';

export interface SmtpSettings {
  host: string | null;
  port: number | null;
  secure: SmtpSecure;
  user: string | null;
  password: string | null;
  from: string | null;
  /** Default recipients: rules without their own get these. */
  to: string[];
}

/** What the last check of the SMTP settings found: ok true/false, or null while it runs. */
export interface SmtpCheck {
  ok: boolean | null;
  message: string;
  at: number;
}

/** The settings as the API shows them: never the password. */
export function smtpView(s: SmtpSettings, source: 'flags' | 'settings', check: SmtpCheck | null = null) {
  return {
    host: s.host, port: s.port ?? defaultPort(s.secure), secure: s.secure, user: s.user, password_set: s.password !== null && s.password !== '',
    from: fromAddress(s), to: s.to, configured: s.host !== null, source, check,
  };
}

function transportFor(s: SmtpSettings & { host: string }) {
  return nodemailer.createTransport({
    host: s.host, port: s.port ?? defaultPort(s.secure), secure: s.secure === 'tls', requireTLS: s.secure === 'starttls', ignoreTLS: s.secure === 'none',
    auth: s.user !== null ? { user: s.user, pass: s.password ?? '' } : undefined,
    connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000, logger: false, debug: false,
  });
}

/**
 * Connects, negotiates TLS as the settings demand and logs in, without sending anything: settings
 * the server can never satisfy (STARTTLS required but not offered, wrong login) show at once.
 */
export async function verifySmtp(s: SmtpSettings): Promise<SmtpCheck> {
  if (s.host === null) return { ok: false, message: 'SMTP is not configured', at: Date.now() };
  const where = `${s.host}:${s.port ?? defaultPort(s.secure)} (${s.secure})`;
  const transport = transportFor({ ...s, host: s.host });
  try {
    await transport.verify();
    return { ok: true, message: `${where} accepts these settings${s.user !== null ? ` and the login of '${s.user}'` : ''}`, at: Date.now() };
  } catch (e) {
    const err = e as Error & { response?: string; code?: string };
    return { ok: false, message: `${where}: ${err.response ?? `${err.code ? `${err.code}: ` : ''}${err.message}`}`, at: Date.now() };
  } finally {
    transport.close();
  }
}

export function defaultPort(secure: SmtpSecure): number { return secure === 'tls' ? 465 : secure === 'none' ? 25 : 587; }
export function fromAddress(s: SmtpSettings): string { return s.from ?? `spiderplane@${hostname()}`; }

/** An SMTP failure as the outbox keeps it: the server's words, and whether retrying can help. */
export class SmtpFailure extends Error {
  constructor(message: string, readonly permanent: boolean, readonly responseCode: number | null) {
    super(message);
  }
}

export interface OutgoingMail {
  to: string;
  subject: string;
  text: string;
  html: string;
  messageId: string;
  headers: Record<string, string>;
}

/** Sends one mail; resolves to the server's answer ('250 OK: queued as …'). */
export async function sendMail(s: SmtpSettings, m: OutgoingMail): Promise<string> {
  if (s.host === null) throw new SmtpFailure('SMTP is not configured (set a host in the settings or --smtp-host)', false, null);
  const transport = transportFor({ ...s, host: s.host });
  try {
    const info = await transport.sendMail({
      from: fromAddress(s), to: m.to, subject: m.subject, text: m.text, html: m.html, messageId: m.messageId, headers: m.headers,
    });
    if (info.rejected.length > 0) throw new SmtpFailure(`the server refused ${info.rejected.join(', ')}: ${info.response}`, true, null);
    return info.response;
  } catch (e) {
    if (e instanceof SmtpFailure) throw e;
    const err = e as Error & { responseCode?: number; response?: string; code?: string };
    const code = typeof err.responseCode === 'number' ? err.responseCode : null;
    // 5xx is the server saying no for good; everything else (down, timeout, 4xx) is worth a retry.
    const permanent = code !== null && code >= 500 && code < 600;
    throw new SmtpFailure(err.response ?? `${err.code ? `${err.code}: ` : ''}${err.message}`, permanent, code);
  } finally {
    transport.close();
  }
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export interface NoticeForMail {
  event: 'fire' | 'resolve';
  firing: FiringRow;
}

function when(t: number): string {
  return new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}

/** The facts of one notice, as label/value rows shared by both parts. */
function rows(n: NoticeForMail, publicUrl: string, now: number): Array<[string, string]> {
  const f = n.firing;
  const out: Array<[string, string]> = [['rule', `${f.rule_name} (${f.kind})`]];
  if (f.value !== null) out.push(['figure', formatFigure(f.kind, f.value)]);
  if (f.threshold !== null) out.push(['threshold', formatFigure(f.kind, f.threshold)]);
  out.push(['since', `${when(f.since)} (${ago(now - f.since)} ago)`]);
  if (n.event === 'resolve' && f.resolved_at !== null) out.push(['resolved', `${when(f.resolved_at)}, after ${ago(f.resolved_at - f.since)}`]);
  if (n.event === 'resolve' && f.resolve_detail) out.push(['now', f.resolve_detail]);
  if (f.link) out.push(['link', publicUrl.replace(/\/+$/, '') + f.link]);
  return out;
}

/** A mail for one recipient carrying one or more notices (a group). */
export function composeAlertMail(notices: readonly NoticeForMail[], publicUrl: string, now = Date.now()): { subject: string; text: string; html: string; headers: Record<string, string> } {
  const label = (n: NoticeForMail) => (n.event === 'resolve' ? `resolved: ${n.firing.title}` : n.firing.title);
  const fires = notices.filter((n) => n.event === 'fire').length;
  const resolves = notices.length - fires;
  let subject: string;
  if (notices.length === 1) {
    subject = `[spiderplane] ${label(notices[0]!)}`;
  } else {
    const counts = [fires ? `${fires} firing` : '', resolves ? `${resolves} resolved` : ''].filter((x) => x).join(', ');
    subject = `[spiderplane] ${counts}: ${notices.map(label).join('; ')}`;
  }
  if (subject.length > 200) subject = subject.slice(0, 197) + '...';
  subject = subject.replace(/[\r\n]+/g, ' ');

  const text: string[] = [];
  const html: string[] = [
    '<!doctype html><html><body style="font-family: sans-serif; font-size: 14px">',
    notices.length > 1 ? `<p>${notices.length} alerts (${escapeHtml([fires ? `${fires} firing` : '', resolves ? `${resolves} resolved` : ''].filter((x) => x).join(', '))}):</p>` : '',
  ];
  for (const n of notices) {
    const head = `${n.event === 'fire' ? 'FIRING' : 'RESOLVED'}: ${n.firing.title}`;
    text.push(head);
    const colour = n.event === 'fire' ? '#b00020' : '#1b5e20';
    html.push(`<h3 style="color: ${colour}; margin-bottom: 4px">${escapeHtml(head)}</h3>`, '<table style="border-collapse: collapse">');
    for (const [k, v] of rows(n, publicUrl, now)) {
      text.push(`  ${(k + ':').padEnd(11)}${v}`);
      const cell = k === 'link' ? `<a href="${escapeHtml(v)}">${escapeHtml(v)}</a>` : escapeHtml(v);
      html.push(`<tr><td style="padding: 1px 12px 1px 0; color: #555">${escapeHtml(k)}</td><td>${cell}</td></tr>`);
    }
    html.push('</table>');
    if (n.event === 'fire' && n.firing.detail) {
      text.push('', ...n.firing.detail.split('\n').map((l) => `  ${l}`));
      html.push(`<pre style="background: #f4f4f4; padding: 6px; white-space: pre-wrap">${escapeHtml(n.firing.detail)}</pre>`);
    }
    text.push('');
  }
  text.push('-- ', `spiderplane alerts: ${publicUrl.replace(/\/+$/, '')}/alerts`);
  html.push(`<p style="color: #777; font-size: 12px">spiderplane alerts: <a href="${escapeHtml(publicUrl.replace(/\/+$/, ''))}/alerts">${escapeHtml(publicUrl.replace(/\/+$/, ''))}/alerts</a></p></body></html>`);
  return {
    subject, text: text.join('\n') + '\n', html: html.join('\n'),
    headers: { 'X-Spiderplane-Alerts': notices.map((n) => `${n.event}:${n.firing.id}`).join(', ') },
  };
}

// The mail outbox: every alert mail is a row in the database before any SMTP connection is made.
//
// Delivery semantics. A mail is CLAIMED (queued -> sending, attempts + 1) in one committed UPDATE
// before it is handed to SMTP, and RECORDED (sending -> sent) right after the server accepts it.
// A failure puts it back to queued with a later next_attempt_at (exponential backoff), so SMTP
// being down or refusing loses nothing, and a master restart finds the queue where it was.
// The one window that cannot be closed from this side is a crash (kill -9, power loss) after the
// server said 250 and before the 'sent' row is committed: at the next start such a mail is still
// 'sending'. We re-queue it (at-least-once for that single in-flight mail, never more than one
// mail) rather than drop it (at-most-once), because a missed alert is worse than a repeated
// one; it keeps its Message-ID, so mail systems that collapse duplicates by Message-ID show it
// once. A graceful stop (SIGTERM) waits for the in-flight send, so it never leaves that window.
import { ifLeader, unfenced, type Fence } from '../cluster/fence.ts';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { SqlDb } from '../store/sql_db.ts';
import { SmtpFailure, sendMail, type OutgoingMail, type SmtpSettings } from './mailer.ts';

export type MailState = 'queued' | 'sending' | 'sent' | 'failed';

export interface MailRow {
  id: number;
  message_id: string;
  recipient: string;
  subject: string;
  text: string;
  html: string;
  headers: string;
  state: MailState;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  smtp_response: string | null;
  created_at: number;
  sent_at: number | null;
}

/** Permanent refusals (5xx) are retried this many times before the mail is marked failed. */
const MAX_PERMANENT_ATTEMPTS = 5;

export class Outbox {
  constructor(private readonly db: SqlDb) {}

  enqueue(m: Omit<OutgoingMail, 'messageId'>, now = Date.now()): Promise<number> {
    const messageId = `<${now.toString(36)}.${randomBytes(9).toString('hex')}@spiderplane.${hostname().replace(/[^A-Za-z0-9.-]/g, '') || 'localhost'}>`;
    return this.db.insert(`INSERT INTO mail_outbox (message_id, recipient, subject, text, html, headers, state, next_attempt_at, created_at)
      VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?)`, [messageId, m.to, m.subject, m.text, m.html, JSON.stringify(m.headers), now, now]);
  }

  /** At start: mails a previous process left 'sending' go back to the queue (see the file comment). */
  recoverInFlight(): Promise<number> {
    return this.db.run(`UPDATE mail_outbox SET state = 'queued', last_error = COALESCE(last_error || '; ', '') || 'the master stopped while sending it' WHERE state = 'sending'`);
  }

  /**
   * The next due mail, claimed for sending (committed before the caller talks to SMTP). The claim
   * is one conditional UPDATE: of several claimers (masters sharing a database) exactly one gets a
   * mail; the others, finding it taken, look for the next one.
   */
  async claimDue(now = Date.now()): Promise<MailRow | undefined> {
    for (let tries = 0; tries < 10; tries++) {
      const due = await this.db.get<{ id: number }>(`SELECT id FROM mail_outbox WHERE state = 'queued' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT 1`, [now]);
      if (!due) return undefined;
      const row = await this.db.get<MailRow>(`UPDATE mail_outbox SET state = 'sending', attempts = attempts + 1 WHERE id = ? AND state = 'queued' RETURNING *`, [due.id]);
      if (row) return row;
    }
    return undefined;
  }

  async markSent(id: number, response: string, now = Date.now()): Promise<void> {
    await this.db.run(`UPDATE mail_outbox SET state = 'sent', sent_at = ?, smtp_response = ?, last_error = NULL WHERE id = ? AND state = 'sending'`, [now, response, id]);
  }
  async markRetry(id: number, error: string, nextAt: number): Promise<void> {
    await this.db.run(`UPDATE mail_outbox SET state = 'queued', next_attempt_at = ?, last_error = ? WHERE id = ? AND state = 'sending'`, [Math.round(nextAt), error, id]);
  }
  async markFailed(id: number, error: string): Promise<void> {
    await this.db.run(`UPDATE mail_outbox SET state = 'failed', last_error = ? WHERE id = ? AND state = 'sending'`, [error, id]);
  }
  async retryFailed(id: number): Promise<boolean> {
    return (await this.db.run(`UPDATE mail_outbox SET state = 'queued', next_attempt_at = ?, attempts = 0 WHERE id = ? AND state = 'failed'`, [Date.now(), id])) === 1;
  }
  get(id: number): Promise<MailRow | undefined> { return this.db.get<MailRow>(`SELECT * FROM mail_outbox WHERE id = ?`, [id]); }
  async lastMailTo(recipient: string): Promise<number | null> {
    return (await this.db.get<{ t: number | null }>(`SELECT MAX(created_at) AS t FROM mail_outbox WHERE recipient = ?`, [recipient]))?.t ?? null;
  }
  async nextDueAt(): Promise<number | null> {
    return (await this.db.get<{ t: number | null }>(`SELECT MIN(next_attempt_at) AS t FROM mail_outbox WHERE state = 'queued'`))?.t ?? null;
  }
  async pruneSent(before: number): Promise<void> { await this.db.run(`DELETE FROM mail_outbox WHERE state = 'sent' AND sent_at < ?`, [before]); }

  async counts(): Promise<Record<MailState, number>> {
    const out: Record<MailState, number> = { queued: 0, sending: 0, sent: 0, failed: 0 };
    for (const r of await this.db.all<{ state: MailState; n: number }>(`SELECT state, COUNT(*) AS n FROM mail_outbox GROUP BY state`)) out[r.state] = Number(r.n);
    return out;
  }

  list(f: { state?: string; limit: number; offset: number }): Promise<MailRow[]> {
    const w = f.state === undefined ? '' : 'WHERE state = ?';
    const params: Array<string | number> = f.state === undefined ? [] : [f.state];
    return this.db.all<MailRow>(`SELECT * FROM mail_outbox ${w} ORDER BY id DESC LIMIT ? OFFSET ?`, [...params, f.limit, f.offset]);
  }
}

export interface SenderOptions {
  retryMinMs: number;
  retryMaxMs: number;
  pollMs?: number;
}

/**
 * Sends due outbox mails one at a time. After a failure it stops for this round (the server is
 * likely down for the others too) and tries again when the next mail is due.
 */
export class OutboxSender {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  /** A leader duty: idle until start() (a standby's events and kicks do nothing). */
  private stopped = true;
  fence: Fence = unfenced;

  constructor(
    private readonly outbox: Outbox,
    private readonly settings: () => SmtpSettings | Promise<SmtpSettings>,
    private readonly opts: SenderOptions,
    private readonly send: (s: SmtpSettings, m: OutgoingMail) => Promise<string> = sendMail,
  ) {}

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => this.kick(), this.opts.pollMs ?? Math.min(1000, Math.max(50, this.opts.retryMinMs / 2)));
    this.timer.unref();
    this.kick();
  }

  /** Waits for the mail being sent (never leaves one 'sending' behind on a clean stop). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** Look at the queue now (called after something was enqueued). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) { this.again = true; return; }
    this.running = this.drain().catch((e) => console.error('[spiderplane-master] alert mail outbox:', e)).finally(() => {
      this.running = null;
      if (this.again) { this.again = false; this.kick(); }
    });
  }

  backoff(attempts: number): number {
    return Math.min(this.opts.retryMaxMs, this.opts.retryMinMs * 2 ** Math.max(0, attempts - 1));
  }

  private async drain(): Promise<void> {
    const settings = await this.settings();
    if (settings.host === null) return; // stays queued until SMTP is configured
    while (!this.stopped) {
      // Claiming a mail is the leader's write: a deposed leader sends nothing more.
      const mail = await ifLeader(this.fence, () => this.outbox.claimDue());
      if (!mail) return;
      try {
        const response = await this.send(settings, {
          to: mail.recipient, subject: mail.subject, text: mail.text, html: mail.html, messageId: mail.message_id,
          headers: JSON.parse(mail.headers) as Record<string, string>,
        });
        await this.outbox.markSent(mail.id, response);
      } catch (e) {
        const err = e instanceof SmtpFailure ? e : new SmtpFailure((e as Error).message, false, null);
        if (err.permanent && mail.attempts >= MAX_PERMANENT_ATTEMPTS) {
          await this.outbox.markFailed(mail.id, err.message);
          console.error(`[spiderplane-master] alert mail ${mail.id} to ${mail.recipient} refused for good after ${mail.attempts} attempts: ${err.message}`);
        } else {
          await this.outbox.markRetry(mail.id, err.message, Date.now() + this.backoff(mail.attempts));
          if (mail.attempts === 1) console.error(`[spiderplane-master] alert mail ${mail.id} to ${mail.recipient} not sent (will retry): ${err.message}`);
        }
        return;
      }
    }
  }
}

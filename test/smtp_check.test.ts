// SMTP settings the server can never satisfy (STARTTLS required but not offered, a login it
// refuses) are found when the master starts and whenever they are saved — not when the first alert
// mail is dropped. Said in the log, by the API and on the alerts and settings pages. Real SMTP server.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startMaster, type MasterHandle } from './helpers/master_process.ts';
import { startSmtp, type SmtpHandle } from './helpers/smtp.ts';
import { waitFor } from './helpers/slave_process.ts';
import { loginByHttp } from './helpers/browser.ts';
import { ADMIN } from './helpers/master_process.ts';

interface SmtpView { check: { ok: boolean | null; message: string } | null }

let smtp: SmtpHandle;
let master: MasterHandle;

before(async () => {
  smtp = await startSmtp(); // offers no STARTTLS
  master = await startMaster({ args: ['--smtp-host', '127.0.0.1', '--smtp-port', String(smtp.port), '--smtp-secure', 'starttls', '--alert-to', 'ops@example.com'] });
});

after(async () => {
  await master?.stop();
  await smtp?.stop();
});

const check = async () => (await master.api<{ smtp: SmtpView }>('GET', '/api/alerts/smtp')).body.smtp.check;
const settled = (ok: boolean) => waitFor(`the SMTP check to say ${ok}`, async () => {
  const c = await check();
  return c && c.ok === ok ? c : undefined;
}, 60_000);

test('STARTTLS required but not offered: found at start, in the log, the API and on the pages', async () => {
  const c = await settled(false);
  assert.match(c.message, new RegExp(`127\\.0\\.0\\.1:${smtp.port} \\(starttls\\)`));
  assert.match(c.message, /STARTTLS/i);
  await waitFor('the log line', () => (/SMTP check FAILED: .*STARTTLS/i.test(master.output()) ? true : undefined), 30_000);
  const { cookie } = await loginByHttp(master.url, ADMIN.user, ADMIN.password);
  for (const [path, text] of [['/alerts', 'The SMTP settings do not work'], ['/settings', 'Connection check failed']] as const) {
    const page = await (await fetch(`${master.url}${path}`, { headers: { Cookie: cookie } })).text();
    assert.ok(page.includes(text), `${path} says so`);
  }
});

test('saving settings the server accepts clears it; a login the server refuses is found on save', async () => {
  const saved = await master.api('PUT', '/api/alerts/smtp', { secure: 'none' });
  assert.equal(saved.status, 200, JSON.stringify(saved.body));
  const ok = await settled(true);
  assert.match(ok.message, /accepts these settings/);
  await waitFor('the log line', () => (/SMTP check: 127\.0\.0\.1:\d+ \(none\) accepts/.test(master.output()) ? true : undefined), 30_000);

  await master.api('PUT', '/api/alerts/smtp', { user: 'nobody', password: 'wrong-password' });
  const bad = await settled(false);
  assert.match(bad.message, /auth|login|credentials|535|53\d/i);
});

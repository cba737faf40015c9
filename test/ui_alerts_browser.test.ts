// The alert pages in real headless Chromium (1280×800) against a real master, a real slave joined to it
// and a real SMTP server on 127.0.0.1: SMTP settings with the password never shown back and a test mail
// that shows the server's answer (and its refusals); the rule form that follows the kind; a cpu rule made
// through the form firing on the real slave and mailing once; alert history with the outbox; edit,
// disable/enable and delete; a viewer sees it all read-only; screenshots of each page.
// Run: cd /work/main && npx tsx --test test/ui_alerts_browser.test.ts
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startMaster, basic, ADMIN, CLUSTER_TOKEN, type MasterHandle } from './helpers/master_process.ts';
import { startSlave, waitFor, type SlaveHandle } from './helpers/slave_process.ts';
import { sleep, waitNodeStatus } from './helpers/master_slave_pair.ts';
import { startSmtp, type SmtpHandle } from './helpers/smtp.ts';
import {
  launchBrowser, newContext, screenshot as takeScreenshot, layoutProblems, loginWithForm, submitAndWait, cookieHeader, csrfOf, type PageProblems,
} from './helpers/browser.ts';

const VIEWER = { user: 'vic', password: 'viewer-password-1' };
const OPS = 'ops@example.com';
const CPU_TO = 'cpu-alerts@example.com';
const FROM = 'Spiderplane <spiderplane@test.example>';
const RULE = 'CPU busy on n1';

interface Rule { id: number; name: string; kind: string; threshold: number | null; duration_seconds: number; enabled: boolean; scope: string; scope_node: string | null; recipients: string[] }
interface Smtp { host: string | null; port: number | null; secure: string; from: string; to: string[]; password_set: boolean; source: string }
interface Mail { to: string; subject: string; state: string; smtp_response: string | null }

/** An SMTP server that answers every RCPT with 550: a real refusal for the test mail. */
async function startRefusingSmtp(): Promise<{ port: number; stop: () => Promise<void> }> {
  const s = new SMTPServer({
    disabledCommands: ['STARTTLS'], authOptional: true, logger: false,
    onRcptTo(address, _session, callback) {
      const err = new Error(`5.1.1 <${address.address}>: no such mailbox here`) as Error & { responseCode: number };
      err.responseCode = 550;
      callback(err);
    },
  });
  s.on('error', () => undefined);
  await new Promise<void>((res) => s.listen(0, '127.0.0.1', () => res()));
  return { port: (s.server.address() as AddressInfo).port, stop: () => new Promise<void>((res) => s.close(() => res())) };
}

describe('alert pages in headless Chromium', { timeout: 240_000 }, () => {
  let smtp: SmtpHandle;
  let master: MasterHandle;
  let slave: SlaveHandle;
  let browser: Browser;
  let admin: BrowserContext;
  let page: Page;
  let ruleId = 0;
  const problems: PageProblems = { errors: [], dialogs: [] };
  const base = () => master.url;
  const layout: string[] = [];
  const screenshot = async (p: Page, name: string) => {
    await takeScreenshot(p, name);
    for (const problem of await layoutProblems(p)) layout.push(`${name} (${new URL(p.url()).pathname}): ${problem}`);
  };
  // The stored settings, without the connection check (it is redone after every save and changes as it runs).
  const getSmtp = async () => {
    const { check: _check, ...settings } = (await master.api<{ smtp: Smtp & { check?: unknown } }>('GET', '/api/alerts/smtp')).body.smtp;
    return settings;
  };
  const flash = async (p: Page = page) => ((await p.textContent('.flash[role=status]')) ?? '').trim();
  const visible = (sel: string) => page.isVisible(sel);
  const ruleRow = (p: Page, name: string) => p.locator('table.list tbody tr', { hasText: name });
  // On /alerts/history: the firings table (the panel with the state filter) and the outbox table.
  const firingRows = (p: Page, text: string) => p.locator('section.panel:has(form.filters) table.list tbody tr', { hasText: text });
  const outboxRows = (p: Page, text: string) => p.locator('section.panel:has(h2:has-text("Mail outbox")) table.list tbody tr', { hasText: text });

  before(async () => {
    const [s, m, b] = await Promise.all([
      startSmtp(),
      startMaster({ args: ['--heartbeat-interval', '0.5', '--offline-after', '3', '--alert-group-wait', '0.2', '--alert-group-seconds', '1', '--mail-retry-min', '0.2'] }),
      launchBrowser(),
    ]);
    smtp = s;
    master = m;
    browser = b;
    // --metrics-interval 1: the slave's first CPU figure comes within a second (default 5 s).
    slave = await startSlave({ args: ['--master', master.url, '--cluster-token', CLUSTER_TOKEN, '--node-name', 'n1', '--metrics-interval', '1'] });
    await waitNodeStatus(master, 'n1', 'online');
    admin = await newContext(browser, problems, 'admin');
    page = await admin.newPage();
    await loginWithForm(page, base(), ADMIN.user, ADMIN.password);
    assert.equal(new URL(page.url()).pathname, '/');
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await slave?.stop().catch(() => undefined);
    await master?.stop().catch(() => undefined);
    await smtp?.stop();
  });

  test('Settings: SMTP saved through the form, the password never shown back, test mail with the server\'s answer, refusals', async () => {
    await page.goto(base() + '/alerts');
    assert.match(await page.textContent('main .flash.error') ?? '', /SMTP is not configured/, 'the alerts page says SMTP is not set up yet');
    assert.ok(await page.isVisible('main .flash.error a[href="/settings"]'), 'with a link to Settings for an admin');
    assert.match(await page.textContent('main') ?? '', /No alert rules/, 'no rules before SMTP and recipients are set');

    await page.goto(base() + '/settings');
    assert.match(await page.textContent('main') ?? '', /Not configured yet/);
    await page.fill('#smtp-host', '127.0.0.1');
    await page.fill('#smtp-port', String(smtp.port));
    await page.selectOption('#smtp-secure', 'none');
    await page.fill('#smtp-from', FROM);
    await page.fill('#smtp-to', OPS);
    await page.fill('#smtp-password', 'smtp-secret-pw-1');
    await submitAndWait(page, 'form[action="/settings/smtp"] button[type=submit]');
    assert.equal(new URL(page.url()).pathname, '/settings');
    // The first save adds the starter rules, and says so.
    assert.match(await flash() ?? '', /^SMTP settings saved\. 3 starter alert rules were added/);
    assert.equal(await page.inputValue('#smtp-host'), '127.0.0.1');
    assert.equal(await page.inputValue('#smtp-port'), String(smtp.port));
    assert.equal(await page.inputValue('#smtp-secure'), 'none');
    assert.equal(await page.inputValue('#smtp-from'), FROM);
    assert.equal(await page.inputValue('#smtp-to'), OPS);
    assert.match(await page.textContent('main') ?? '', new RegExp(`Mails go through 127\\.0\\.0\\.1:${smtp.port} \\(none\\), from Spiderplane <spiderplane@test\\.example>`));
    // The stored password: never in the input, never in the page, only a placeholder saying it is there.
    await page.reload();
    assert.equal(await page.inputValue('#smtp-password'), '');
    assert.match(await page.getAttribute('#smtp-password', 'placeholder') ?? '', /stored/);
    assert.ok(!(await page.content()).includes('smtp-secret-pw-1'), 'the password is nowhere in the page');
    assert.ok(await page.isVisible('input[name="clear_password"]'), 'a way to remove it');
    let saved = await getSmtp();
    assert.equal(saved.password_set, true);
    assert.equal(saved.source, 'settings');
    // Saving again with the field empty keeps it; the checkbox removes it.
    await submitAndWait(page, 'form[action="/settings/smtp"] button[type=submit]');
    assert.equal((await getSmtp()).password_set, true, 'an empty password field keeps the stored one');
    await page.check('input[name="clear_password"]');
    await submitAndWait(page, 'form[action="/settings/smtp"] button[type=submit]');
    assert.equal(await flash(), 'SMTP settings saved.');
    assert.equal(await page.getAttribute('#smtp-password', 'placeholder'), 'none');
    assert.equal((await getSmtp()).password_set, false);
    assert.ok(!master.output().includes('smtp-secret-pw-1'), 'the password is not logged');

    // Test mail to the default recipients: the flash carries the server's answer, the server has the mail.
    await submitAndWait(page, 'form[action="/settings/smtp/test"] button[type=submit]');
    const answer = await flash();
    assert.match(answer, new RegExp(`^Test mail sent to ${OPS}\\. The server answered: 250 `), answer);
    assert.ok(await page.isVisible('.flash.ok'));
    await waitFor('the test mail at the SMTP server', () => (smtp.mails.some((m) => m.to.includes(OPS)) ? true : undefined));
    const test = smtp.mails.find((m) => m.to.includes(OPS))!;
    assert.equal(test.subject, '[spiderplane] test mail');
    assert.equal(test.from, 'spiderplane@test.example');
    // To a given address.
    await page.fill('#smtp-test-to', 'tester@example.com');
    await submitAndWait(page, 'form[action="/settings/smtp/test"] button[type=submit]');
    assert.match(await flash(), /^Test mail sent to tester@example\.com\. The server answered: 250 /);
    assert.equal(smtp.mails.filter((m) => m.to.includes('tester@example.com')).length, 1);
    await page.locator('#smtp-host').scrollIntoViewIfNeeded();
    await screenshot(page, 'settings-smtp');

    // Refusals: a bad host, a bad default recipient -> the refusal on the page, nothing saved.
    const before = await getSmtp();
    const refusal = async () => ((await page.textContent('.errors[role=alert]')) ?? '').trim();
    await page.fill('#smtp-host', 'smtp host!');
    await submitAndWait(page, 'form[action="/settings/smtp"] button[type=submit]');
    assert.match(await refusal(), /^SMTP settings not saved: 'host' must be a host name or IP address/);
    assert.equal(await page.inputValue('#smtp-host'), 'smtp host!', 'what was typed is kept for correction');
    await page.fill('#smtp-host', '127.0.0.1');
    await page.fill('#smtp-to', `${OPS}, not-an-address`);
    await submitAndWait(page, 'form[action="/settings/smtp"] button[type=submit]');
    assert.match(await refusal(), /^SMTP settings not saved: 'to': 'not-an-address' is not an email address/);
    await page.fill('#smtp-to', OPS);
    await page.fill('#smtp-port', '70000');
    await page.$eval('form[action="/settings/smtp"]', (f) => (f as HTMLFormElement).noValidate = true); // past the browser's max=65535
    await submitAndWait(page, 'form[action="/settings/smtp"] button[type=submit]');
    assert.match(await refusal(), /^SMTP settings not saved: 'port' must be a whole number from 1 to 65535/);
    saved = await getSmtp();
    assert.deepEqual(saved, before, 'nothing was saved by the refused forms');
    // A test mail to a bad address is refused before any SMTP talk.
    const mailsBefore = smtp.mails.length;
    await page.fill('#smtp-test-to', 'nobody');
    await submitAndWait(page, 'form[action="/settings/smtp/test"] button[type=submit]');
    assert.match(await flash(), /'to': 'nobody' is not an email address/);
    assert.equal(smtp.mails.length, mailsBefore);

    // A server that says no: its 550 is on the page.
    const refusing = await startRefusingSmtp();
    try {
      assert.equal((await master.api('PUT', '/api/alerts/smtp', { port: refusing.port })).status, 200);
      await page.reload();
      await page.fill('#smtp-test-to', 'someone@example.com');
      await submitAndWait(page, 'form[action="/settings/smtp/test"] button[type=submit]');
      const refusal = await flash();
      assert.match(refusal, /^The test mail was not sent: .*550.*no such mailbox here.*\(SMTP 550\)$/, refusal);
      assert.ok(await page.isVisible('.flash.error'));
    } finally {
      assert.equal((await master.api('PUT', '/api/alerts/smtp', { port: smtp.port })).status, 200);
      await refusing.stop();
    }
    assert.deepEqual(await getSmtp(), before);
  });

  test('Alerts: the rule form follows the kind; a cpu rule made through the form; a bad one refused with its values kept', async () => {
    await page.goto(base() + '/alerts');
    assert.equal(await page.$$eval('main .flash.error', (els) => els.length), 0, 'SMTP is configured now');
    // With SMTP and recipients set, the usual three rules exist.
    const defaults = await page.$$eval('table.list tbody tr td:first-child strong', (els) => els.map((e) => e.textContent));
    assert.deepEqual(defaults, ['Node offline', 'Job failed', 'Disk over 90 %']);

    // node_offline (the default kind): no threshold, a duration, scopes all/node.
    assert.equal(await page.inputValue('#r-kind'), 'node_offline');
    assert.equal(await visible('#r-threshold'), false, 'node offline has no threshold');
    assert.equal(await visible('#r-duration'), true);
    const enabledScopes = () => page.$$eval('#r-scope option', (os) => os.filter((o) => !(o as HTMLOptionElement).disabled).map((o) => (o as HTMLOptionElement).value));
    assert.deepEqual(await enabledScopes(), ['all', 'node']);
    assert.equal(await visible('#r-node'), false, 'no node field while the scope is everything');
    // cpu: threshold with its hint.
    await page.selectOption('#r-kind', 'cpu');
    assert.equal(await visible('#r-threshold'), true);
    assert.equal((await page.textContent('[data-threshold-hint]'))?.trim(), 'percent (0-100): fires above it');
    assert.equal(await visible('#r-duration'), true);
    // job_failed: no threshold, no duration, project and spider scopes.
    await page.selectOption('#r-kind', 'job_failed');
    assert.equal(await visible('#r-threshold'), false);
    assert.equal(await visible('#r-duration'), false, 'a job rule fires per run: no duration');
    assert.deepEqual(await enabledScopes(), ['all', 'node', 'project', 'spider']);
    await page.selectOption('#r-scope', 'spider');
    assert.deepEqual([await visible('#r-node'), await visible('#r-project'), await visible('#r-spider')], [false, true, true]);
    await page.selectOption('#r-scope', 'project');
    assert.deepEqual([await visible('#r-node'), await visible('#r-project'), await visible('#r-spider')], [false, true, false]);
    // schedule_missed has no node scope; back to cpu the spider scope falls back to everything.
    await page.selectOption('#r-kind', 'schedule_missed');
    assert.deepEqual(await enabledScopes(), ['all', 'project', 'spider']);
    await page.selectOption('#r-kind', 'job_errors');
    assert.equal(await visible('#r-threshold'), true);
    assert.match((await page.textContent('[data-threshold-hint]')) ?? '', /ERROR\/CRITICAL lines/);
    await page.selectOption('#r-scope', 'spider');
    await page.selectOption('#r-kind', 'cpu');
    assert.equal(await page.inputValue('#r-scope'), 'all', 'a scope the kind does not take falls back to everything');
    assert.deepEqual([await visible('#r-node'), await visible('#r-project'), await visible('#r-spider')], [false, false, false]);

    // A bad one: cpu over 150 % -> 400, the message on the page, every value still in the form.
    await page.fill('#r-threshold', '150');
    await page.fill('#r-duration', '1');
    await page.fill('#r-recipients', CPU_TO);
    await page.fill('#r-name', RULE);
    const [refused] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('form[data-rule-form] button[type=submit]')]);
    assert.equal(refused?.status(), 400);
    assert.equal((await page.textContent('.errors[role=alert]'))?.trim(), `'threshold' for cpu is a percentage: from 0 to 100`);
    assert.equal(await page.inputValue('#r-kind'), 'cpu');
    assert.equal(await page.inputValue('#r-threshold'), '150');
    assert.equal(await page.inputValue('#r-duration'), '1');
    assert.equal(await page.inputValue('#r-recipients'), CPU_TO);
    assert.equal(await page.inputValue('#r-name'), RULE);
    assert.equal(await page.isChecked('form[data-rule-form] input[name="enabled"]'), true);
    assert.equal(await visible('#r-threshold'), true, 'the refused form still shows the fields of its kind');
    await screenshot(page, 'alerts-refused-rule');
    assert.equal((await master.api<{ rules: Rule[] }>('GET', '/api/alerts/rules')).body.rules.length, 3, 'nothing was created');

    // Fixed: threshold 0 for 1 s on node n1 -> created and listed.
    await page.fill('#r-threshold', '0');
    await page.selectOption('#r-scope', 'node');
    assert.equal(await visible('#r-node'), true);
    assert.equal(await page.$eval('#node-names option', (o) => (o as HTMLOptionElement).value), 'n1', 'the node list offers n1');
    await page.fill('#r-node', 'n1');
    await submitAndWait(page, 'form[data-rule-form] button[type=submit]');
    assert.equal(new URL(page.url()).pathname, '/alerts');
    assert.equal(await flash(), `Rule '${RULE}' created.`);
    const row = ruleRow(page, RULE);
    assert.equal(await row.count(), 1);
    const cells = (await row.locator('td').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
    assert.match(cells[0]!, new RegExp(`^${RULE} enabled$`));
    assert.equal(cells[1], 'CPU over 0 % for 1 s');
    assert.equal(cells[2], 'node n1');
    assert.equal(cells[3], CPU_TO);
    const rule = (await master.api<{ rules: Rule[] }>('GET', '/api/alerts/rules')).body.rules.find((r) => r.name === RULE)!;
    assert.deepEqual([rule.kind, rule.threshold, rule.duration_seconds, rule.scope, rule.scope_node, rule.recipients, rule.enabled], ['cpu', 0, 1, 'node', 'n1', [CPU_TO], true]);
    ruleId = rule.id;
  });

  test('Alert history: the cpu rule fires on the real slave, shows figure and threshold, the outbox shows the mail sent; one mail', async () => {
    assert.ok(ruleId, 'the rule was created');
    await waitFor('the cpu rule firing', async () => {
      const r = await master.api<{ firings: Array<{ rule_id: number }> }>('GET', '/api/alerts/firings?state=firing');
      return r.body.firings.some((f) => f.rule_id === ruleId) ? true : undefined;
    }, 60_000, 200);
    await waitFor('its mail sent', async () => {
      const r = await master.api<{ mails: Mail[] }>('GET', '/api/alerts/outbox?state=sent');
      return r.body.mails.some((m) => m.to === CPU_TO) ? true : undefined;
    }, 60_000, 200);
    await page.goto(base() + '/alerts/history');
    const row = firingRows(page, 'node n1 CPU over 0 %');
    assert.equal(await row.count(), 1);
    const cells = (await row.locator('td').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
    assert.match(cells[0]!, new RegExp(`^node n1 CPU over 0 % ${RULE}$`));
    assert.equal(cells[1], 'firing');
    assert.ok(Number(cells[2]) > 0, `the figure is the CPU percentage: ${cells[2]}`);
    assert.equal(cells[3], '0');
    assert.match(cells[4]!, /\S/, 'since when');
    assert.equal(await row.locator('a').getAttribute('href'), '/nodes/n1', 'links to the node');
    // The state filter.
    await page.selectOption('#h-state', 'resolved');
    await submitAndWait(page, 'form.filters button[type=submit]');
    assert.equal(new URL(page.url()).searchParams.get('state'), 'resolved');
    assert.equal(await firingRows(page, 'node n1 CPU over 0 %').count(), 0, 'not among the resolved');
    await page.selectOption('#h-state', 'firing');
    await submitAndWait(page, 'form.filters button[type=submit]');
    assert.equal(await firingRows(page, 'node n1 CPU over 0 %').count(), 1);
    // The outbox table: the mail, sent, with the server's words.
    const mail = outboxRows(page, CPU_TO);
    assert.equal(await mail.count(), 1);
    const mcells = (await mail.locator('td').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
    assert.equal(mcells[0], '[spiderplane] node n1 CPU over 0 %');
    assert.equal(mcells[1], CPU_TO);
    assert.equal(mcells[2], 'sent');
    assert.equal(mcells[3], '1');
    assert.match(mcells[5]!, /\S/, 'sent at');
    assert.match(mcells[6]!, /^250 /, `the server's answer: ${mcells[6]}`);
    assert.match(await page.textContent('h2:has-text("Mail outbox")') ?? '', /\d+ sent/);
    await screenshot(page, 'alert-history');

    // The SMTP server got exactly one mail for it, none more while it stays firing.
    await sleep(2500);
    const got = smtp.mails.filter((m) => m.to.includes(CPU_TO));
    assert.equal(got.length, 1, got.map((m) => m.subject).join(' | '));
    assert.equal(got[0]!.subject, '[spiderplane] node n1 CPU over 0 %');
    assert.match(got[0]!.text, /FIRING: node n1 CPU over 0 %/);

    // The list shows it firing, and the latest alerts.
    await page.goto(base() + '/alerts');
    assert.match(await ruleRow(page, RULE).locator('td').nth(4).textContent() ?? '', /1 firing/);
    assert.match(await page.textContent('.progress-list') ?? '', /firing\s+node n1 CPU over 0 %/);
    await screenshot(page, 'alerts');
  });

  test('the rule page: edit the threshold and save; disable and enable from the list; delete after a confirmation', async () => {
    await page.goto(base() + '/alerts');
    await Promise.all([page.waitForNavigation(), ruleRow(page, RULE).locator(`a[href="/alerts/rules/${ruleId}"]`).click()]);
    assert.equal(new URL(page.url()).pathname, `/alerts/rules/${ruleId}`);
    assert.match(await page.textContent('h1') ?? '', new RegExp(`${RULE}\\s+enabled`));
    assert.equal(await page.inputValue('#r-kind'), 'cpu');
    assert.equal(await page.inputValue('#r-threshold'), '0');
    assert.equal(await page.inputValue('#r-duration'), '1');
    assert.equal(await page.inputValue('#r-scope'), 'node');
    assert.equal(await visible('#r-node'), true);
    assert.equal(await page.inputValue('#r-node'), 'n1');
    assert.equal(await page.inputValue('#r-recipients'), CPU_TO);
    assert.match(await page.textContent('table.list') ?? '', /node n1 CPU over 0 %[\s\S]*firing/, 'its firings');
    await screenshot(page, 'alert-rule');

    // A bad edit is refused on the same page with the typed value kept.
    await page.fill('#r-threshold', '-5');
    const [bad] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('form[data-rule-form] button[type=submit]')]);
    assert.equal(bad?.status(), 400);
    assert.match(await page.textContent('.errors[role=alert]') ?? '', /'threshold' for cpu is a percentage/);
    assert.equal(await page.inputValue('#r-threshold'), '-5');
    assert.equal((await master.api<{ rule: Rule }>('GET', `/api/alerts/rules/${ruleId}`)).body.rule.threshold, 0);

    await page.fill('#r-threshold', '97.5');
    await submitAndWait(page, 'form[data-rule-form] button[type=submit]');
    assert.equal(new URL(page.url()).pathname, `/alerts/rules/${ruleId}`);
    assert.equal(await flash(), 'Rule saved.');
    assert.equal(await page.inputValue('#r-threshold'), '97.5');
    const edited = (await master.api<{ rule: Rule }>('GET', `/api/alerts/rules/${ruleId}`)).body.rule;
    assert.deepEqual([edited.threshold, edited.duration_seconds, edited.scope_node, edited.name, edited.enabled], [97.5, 1, 'n1', RULE, true]);

    await page.goto(base() + '/alerts');
    assert.match(await ruleRow(page, RULE).locator('td').nth(1).textContent() ?? '', /CPU over 97\.5 % for 1 s/);
    await submitAndWait(page, `form[action="/alerts/rules/${ruleId}/toggle"] button[type=submit]`);
    assert.equal(await flash(), `'${RULE}' disabled.`);
    assert.equal((await ruleRow(page, RULE).locator('td').first().locator('.badge').textContent())?.trim(), 'disabled');
    assert.equal((await page.textContent(`form[action="/alerts/rules/${ruleId}/toggle"] button`))?.trim(), 'Enable');
    assert.equal((await master.api<{ rule: Rule }>('GET', `/api/alerts/rules/${ruleId}`)).body.rule.enabled, false);
    await submitAndWait(page, `form[action="/alerts/rules/${ruleId}/toggle"] button[type=submit]`);
    assert.equal(await flash(), `'${RULE}' enabled.`);
    assert.equal((await ruleRow(page, RULE).locator('td').first().locator('.badge').textContent())?.trim(), 'enabled');
    assert.equal((await page.textContent(`form[action="/alerts/rules/${ruleId}/toggle"] button`))?.trim(), 'Disable');

    const dialogs = problems.dialogs.length;
    await submitAndWait(page, `form[action="/alerts/rules/${ruleId}/delete"] button[type=submit]`);
    assert.equal(problems.dialogs.length, dialogs + 1, 'the delete asked first');
    assert.equal(problems.dialogs.at(-1), `[admin] confirm: Delete rule ${RULE}?`);
    assert.equal(await flash(), `Rule '${RULE}' deleted.`);
    assert.equal(await ruleRow(page, RULE).count(), 0);
    assert.equal((await master.api('GET', `/api/alerts/rules/${ruleId}`)).status, 404);
    const missing = await page.goto(`${base()}/alerts/rules/${ruleId}`);
    assert.equal(missing?.status(), 404);
    assert.match(await page.textContent('main') ?? '', new RegExp(`There is no alert rule ${ruleId}`));
    // Its history stays.
    await page.goto(base() + '/alerts/history');
    assert.equal(await firingRows(page, 'node n1 CPU over 0 %').count(), 1);
  });

  test('a viewer sees the alert pages read-only, and a forged rule POST with a valid CSRF token is 403', async () => {
    assert.equal((await master.api('POST', '/api/users', { username: VIEWER.user, password: VIEWER.password, role: 'viewer' }, basic(ADMIN.user, ADMIN.password))).status, 201);
    const ctx = await newContext(browser, problems, 'viewer');
    try {
      const vp = await ctx.newPage();
      await loginWithForm(vp, base(), VIEWER.user, VIEWER.password, '/login?next=%2Falerts');
      assert.equal(new URL(vp.url()).pathname, '/alerts');
      assert.match(await vp.textContent('main') ?? '', /Node offline[\s\S]*Job failed[\s\S]*Disk over 90 %/, 'the rules are listed');
      assert.equal(await vp.$$eval('main form[data-rule-form], main form[method=post], main button', (els) => els.length), 0, 'no rule form, no toggle/delete buttons');
      assert.equal(await vp.$$eval('main h2', (els) => els.some((e) => e.textContent === 'New rule')), false);

      const first = (await master.api<{ rules: Rule[] }>('GET', '/api/alerts/rules')).body.rules[0]!;
      await vp.goto(`${base()}/alerts/rules/${first.id}`);
      assert.equal(await vp.$eval('form[data-rule-form] fieldset', (f) => (f as HTMLFieldSetElement).disabled), true, 'the rule form is read-only');
      assert.equal(await vp.$$eval('form[data-rule-form] button', (els) => els.length), 0, 'no save button');
      assert.equal(await vp.inputValue('#r-kind'), first.kind);

      await vp.goto(base() + '/alerts/history');
      assert.equal(await firingRows(vp, 'node n1 CPU over 0 %').count(), 1, 'a viewer reads the history');
      assert.equal(await vp.$$eval('main form[method=post], main button:not(form.filters button)', (els) => els.length), 0);

      await vp.goto(base() + '/settings');
      assert.equal(await vp.$$eval('form[action="/settings/smtp"], form[action="/settings/smtp/test"], #smtp-host, #smtp-password', (els) => els.length), 0, 'no SMTP form, no test mail button');
      assert.match(await vp.textContent('main') ?? '', new RegExp(`Default recipients\\s*${OPS}`));
      assert.ok(!(await vp.content()).includes('Send test mail'));

      const csrf = await csrfOf(vp);
      assert.ok(csrf.length > 10, 'the viewer has a CSRF token');
      const cookie = await cookieHeader(ctx, base());
      const post = (path: string, fields: Record<string, string>) => fetch(base() + path, {
        method: 'POST', redirect: 'manual', body: new URLSearchParams({ _csrf: csrf, ...fields }),
        headers: { Cookie: cookie, 'Content-Type': 'application/x-www-form-urlencoded' },
      });
      const forged = await post('/alerts/rules', { kind: 'job_failed', scope: 'all', enabled: '1', name: 'forged by viewer' });
      assert.equal(forged.status, 403);
      assert.match(await forged.text(), /needs the operator role/);
      for (const path of [`/alerts/rules/${first.id}/toggle`, `/alerts/rules/${first.id}/delete`]) {
        const r = await post(path, {});
        await r.arrayBuffer();
        assert.equal(r.status, 403, path);
      }
      const smtpForged = await post('/settings/smtp', { host: 'evil.example', port: '25', secure: 'none', to: 'evil@example.com' });
      await smtpForged.arrayBuffer();
      assert.equal(smtpForged.status, 403);
      const rules = (await master.api<{ rules: Rule[] }>('GET', '/api/alerts/rules')).body.rules;
      assert.ok(!rules.some((r) => r.name === 'forged by viewer'), 'nothing was created');
      assert.equal(rules.find((r) => r.id === first.id)?.enabled, true, 'nothing was toggled');
      assert.equal((await getSmtp()).host, '127.0.0.1', 'SMTP untouched');
    } finally {
      await ctx.close();
    }
  });

  test('every photographed alert page looks like a product: no table cut off, no sideways scroll, no raw JSON', () => {
    assert.deepEqual(layout, []);
  });

  test('no page raised an error or an unexpected dialog', () => {
    assert.deepEqual(problems.errors, []);
    assert.deepEqual(problems.dialogs.filter((d) => !/confirm: Delete rule /.test(d)), []);
  });
});

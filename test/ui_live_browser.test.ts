// The admin UI as a newcomer meets it in the first hour, in real Chromium against a real master and two
// real slaves (issue 13, items 7, 8, 9, 11, 12): the job page follows a run live to its end from one
// stream (no stale Duration/Cancel/stats, no 404 in the console), log highlighting, items as a table,
// charts over their window, a node that stops answering, runs by schedule, the version picker, an
// admin's password reset, SMTP's starter rules, the upload form's version guess and its messages.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startMaster, basic, ADMIN, type MasterHandle } from './helpers/master_process.ts';
import { tempDir, waitFor, type SlaveHandle } from './helpers/slave_process.ts';
import { joinSlave, deployNodePackage, uploadVersion, waitNodeStatus, waitRunState, type NodeView, type RunView } from './helpers/master_slave_pair.ts';
import { buildDemoEgg, buildNodePackage } from './helpers/fixtures.ts';
import { launchBrowser, newContext, loginWithForm, submitAndWait, cookieHeader, csrfOf, screenshot, type PageProblems } from './helpers/browser.ts';
import { formatDuration } from '../master/web/render.ts';

const LOG_STATUS = "[data-log-status]";

describe('the admin UI follows what happens, live and in words', { timeout: 240_000 }, () => {
  let master: MasterHandle;
  let n1: SlaveHandle;
  let n2: SlaveHandle | undefined;
  let browser: Browser;
  let admin: BrowserContext;
  let page: Page;
  const work = tempDir('spiderplane-ui-live-');
  const problems: PageProblems = { errors: [], dialogs: [] };
  const base = () => master.url;
  const made: { scheduleId?: number; manualJob?: string; scheduledJob?: string } = {};

  const runOn = async (body: Record<string, unknown>): Promise<string> => {
    const r = await master.api<{ runs: RunView[] }>('POST', '/api/runs', body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.runs[0]!.job;
  };
  const waitText = (sel: string, re: RegExp, timeout = 60_000) =>
    page.waitForFunction(([s, src, flags]) => new RegExp(src!, flags).test(document.querySelector(s!)?.textContent ?? ''), [sel, re.source, re.flags], { polling: 100, timeout });

  before(async () => {
    const [m, egg, b] = await Promise.all([
      // A node is judged offline after 8 s of silence: long enough to see "not answering" first.
      startMaster({ args: ['--heartbeat-interval', '0.5', '--heartbeat-timeout', '1', '--offline-after', '8'] }),
      buildDemoEgg(work),
      launchBrowser(),
    ]);
    master = m;
    browser = b;
    [n1, n2] = await Promise.all([joinSlave(master, 'n1'), joinSlave(master, 'n2')]);
    const up = await uploadVersion(master, 'demo', 'r1', await readFile(egg));
    assert.equal(up.status, 201, JSON.stringify(up.body));
    await deployNodePackage(master, work, 'gen', '1');
    await deployNodePackage(master, work, 'gen', '2');
    admin = await newContext(browser, problems, 'admin');
    page = await admin.newPage();
    await loginWithForm(page, base(), ADMIN.user, ADMIN.password);
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await Promise.all([n1?.stop().catch(() => undefined), n2?.stop().catch(() => undefined)]);
    await master?.stop().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  test('a Scrapy job page opened at dispatch follows the run to its end without a reload', async () => {
    // Opened before the run has a node or a log: the page must not fetch anything that 404s.
    const job = await runOn({ project: 'demo', spider: 'slow', args: { seconds: '600' }, target: { mode: 'node', node: 'n1' } });
    await page.goto(`${base()}/jobs/${job}`);
    await waitText('#log', /slow tick 2\b/);
    await waitText('[data-job-state] .badge', /^running$/, 30_000);
    assert.equal(await page.locator('[data-cancel-form]').count(), 1, 'an active run can be cancelled');
    assert.match(await page.textContent('[data-time-field="started_at"]') ?? '', /CET|CEST|GMT[+-]\d/, 'times carry their zone');

    // Cancelled elsewhere (the API), so only the stream can tell this page.
    assert.equal((await master.api('POST', `/api/runs/${job}/cancel`)).status, 200);
    const run = await waitRunState(master, job, (r) => r.state === 'finished', 'finished', 60_000);
    await waitText('[data-job-state] .badge', /^cancelled$/, 30_000);
    await waitText(LOG_STATUS, /The run is/, 30_000);
    assert.equal(await page.locator('[data-cancel-form]').count(), 0, 'the Cancel button left with the run');
    const expected = formatDuration((run.ended_at as number) - (run.started_at as number));
    await page.waitForFunction((d) => document.querySelector('[data-duration]')?.textContent === d, expected, { polling: 100, timeout: 10_000 });
    assert.equal(await page.textContent('[data-field="state"]'), 'finished');
    // Scrapy's final stats arrive through the stream too.
    await waitText('[data-stat="Finish reason"]', /shutdown/, 30_000);
    // The items as a table, columns from their keys, with the download link.
    await page.waitForSelector('[data-job-items] table tbody tr', { timeout: 30_000 });
    const heads = await page.$$eval('[data-job-items] th', (els) => els.map((e) => e.textContent));
    assert.deepEqual(heads, ['#', 'n', 'spider', 'elapsed']);
    assert.match(await page.getAttribute('[data-items-link]', 'href') ?? '', new RegExp(`/api/runs/${job}/items$`));
    // The duration stays frozen at the run's own length (it ticked while running).
    assert.equal(await page.textContent('[data-duration]'), expected);
  });

  test('log highlighting marks real errors and tracebacks, not the stats dump that counts them', async () => {
    const job = await runOn({ project: 'demo', spider: 'broken', target: { mode: 'node', node: 'n1' } });
    await page.goto(`${base()}/jobs/${job}`);
    await waitText(LOG_STATUS, /The run is/);
    const spans = await page.$$eval('#log span', (els) => els.map((e) => [e.className, e.textContent ?? ''] as [string, string]));
    const marked = (re: RegExp) => spans.find(([, t]) => re.test(t))?.[0];
    assert.equal(marked(/broken spider is about to fail on purpose/), 'l-error');
    assert.equal(marked(/ERROR: Spider error processing/), 'l-error');
    assert.equal(marked(/^RuntimeError: boom from broken spider/), 'l-trace');
    assert.equal(marked(/'log_count\/ERROR': \d+,/), '', 'the stats line that counts errors is plain text');
    const dump = spans.findIndex(([, t]) => /Dumping Scrapy stats/.test(t));
    assert.ok(dump > 0, 'the log has a stats dump');
    const redAfter = spans.slice(dump).filter(([c]) => c === 'l-error' || c === 'l-trace' || c === 'l-critical').map(([, t]) => t);
    assert.deepEqual(redAfter, [], 'nothing after the stats dump is highlighted');
    await waitText('[data-stat="Errors logged"]', /^[1-9]/, 30_000);
    await page.waitForSelector('[data-job-errors] .error-item', { timeout: 30_000 });
  });

  test('a generic job has no Scrapy stats panel and shows its items as a table', async () => {
    made.manualJob = await runOn({ project: 'gen', spider: 'hello', target: { mode: 'node', node: 'n1' } });
    await page.goto(`${base()}/jobs/${made.manualJob}`);
    await waitText(LOG_STATUS, /The run is/);
    assert.equal(await page.locator('[data-job-stats]').count(), 0, 'no empty Scrapy stats panel');
    await page.waitForSelector('[data-job-items] table tbody tr', { timeout: 30_000 });
    assert.equal(await page.locator('[data-job-items] tbody tr').count(), 2);
    const heads = await page.$$eval('[data-job-items] th', (els) => els.map((e) => e.textContent));
    assert.ok(heads.includes('n') && heads.includes('spider'), heads.join(','));
    assert.doesNotMatch(await page.textContent('[data-job-items] table') ?? '', /[{[]\s*"[\w$-]+"\s*:/, 'nested values are not raw JSON');
  });

  test('the Jobs list names the schedule that made a run and filters by it', async () => {
    const s = await master.api<{ schedule: { id: number } }>('POST', '/api/schedules', { name: 'hello nightly', cron: '0 3 * * *', project: 'gen', spider: 'hello' });
    assert.equal(s.status, 201, JSON.stringify(s.body));
    made.scheduleId = s.body.schedule.id;
    const fired = await master.api<{ runs: RunView[] }>('POST', `/api/schedules/${made.scheduleId}/run`, {});
    made.scheduledJob = fired.body.runs[0]!.job;
    await waitRunState(master, made.scheduledJob, (r) => r.state === 'finished', 'finished');
    await page.goto(`${base()}/jobs`);
    const row = page.locator('table.list tbody tr', { has: page.locator(`a[href="/jobs/${made.scheduledJob}"]`) });
    assert.equal(await row.locator(`[data-started-by] a[href="/schedules/${made.scheduleId}"]`).textContent().then((t) => t?.includes('hello nightly')), true);
    const manual = page.locator('table.list tbody tr', { has: page.locator(`a[href="/jobs/${made.manualJob}"]`) });
    assert.match(await manual.locator('[data-started-by]').textContent() ?? '', /admin/);
    await page.selectOption('#f-schedule', String(made.scheduleId));
    await submitAndWait(page, 'form.filters button[type=submit]');
    const jobs = await page.$$eval('table.list tbody tr td:first-child a', (els) => els.map((e) => e.getAttribute('href')));
    assert.deepEqual(jobs, [`/jobs/${made.scheduledJob}`]);
    await page.goto(`${base()}/schedules/${made.scheduleId}`);
    assert.equal(await page.getAttribute('[data-schedule-jobs]', 'href'), `/jobs?schedule=${made.scheduleId}`);
  });

  test('Run now picks a version: the newest by default, any listed one on request', async () => {
    await page.goto(`${base()}/projects/gen`);
    const options = await page.$$eval('#run-version option', (els) => els.map((e) => (e as HTMLOptionElement).value));
    assert.deepEqual(options, ['', '2', '1']);
    assert.equal(await page.inputValue('#run-version'), '', 'the newest by default');
    await page.selectOption('#run-spider', 'hello');
    await page.selectOption('#run-version', '1');
    await submitAndWait(page, 'form[data-run-form] button[type=submit]');
    const job = /^\/jobs\/([^/]+)$/.exec(new URL(page.url()).pathname)?.[1];
    assert.ok(job, page.url());
    const run = await waitRunState(master, job, () => true, 'exists');
    assert.equal(run.version, '1');
    await waitText(LOG_STATUS, /The run is/);
  });

  test('the upload form reads NAME-VERSION.zip, and its errors carry no curl tip', async () => {
    const zip = join(work, 'nodehello-1.0.zip');
    await copyFile(await buildNodePackage(work), zip);
    await page.goto(`${base()}/projects`);
    await page.setInputFiles('#egg', zip);
    await page.waitForFunction(() => (document.querySelector<HTMLInputElement>('#version')?.value ?? '') !== '', undefined, { polling: 100 });
    assert.equal(await page.inputValue('#project'), 'nodehello');
    assert.equal(await page.inputValue('#version'), '1.0', 'the version from the file name, not a timestamp');
    const junk = join(work, 'junk-2.zip');
    await writeFile(junk, 'not a zip at all');
    await page.goto(`${base()}/projects`);
    await page.setInputFiles('#egg', junk);
    await page.waitForFunction(() => (document.querySelector<HTMLInputElement>('#version')?.value ?? '') === '2', undefined, { polling: 100 });
    await submitAndWait(page, 'form[data-upload-form] button[type=submit]');
    const error = await page.textContent('[data-upload-form]') ?? '';
    const shown = await page.textContent('.errors') ?? '';
    assert.match(shown, /not a ZIP/i);
    assert.doesNotMatch(shown + error, /curl/);
  });

  test('an admin resets another user\'s password: CSRF-checked, admin only, their sessions end', async () => {
    const created = await master.api('POST', '/api/users', { username: 'op1', password: 'operator-pass-1', role: 'operator' });
    assert.equal(created.status, 201);
    const theirs = await newContext(browser, problems, 'op1');
    try {
      const op = await theirs.newPage();
      await loginWithForm(op, base(), 'op1', 'operator-pass-1');
      assert.equal(new URL(op.url()).pathname, '/');
      // An operator may not reset anyone's password, even with a valid token.
      const opCookie = await cookieHeader(theirs, base());
      const opCsrf = await csrfOf(op);
      const adminId = ((await master.api<{ users: Array<{ id: number; username: string }> }>('GET', '/api/users')).body.users.find((u) => u.username === ADMIN.user))!.id;
      const byOperator = await fetch(`${base()}/users/${adminId}/password`, { method: 'POST', redirect: 'manual', headers: { Cookie: opCookie, 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: opCsrf, password: 'taken-over-1' }) });
      assert.equal(byOperator.status, 403);
      // Without the admin's CSRF token: refused.
      const users = (await master.api<{ users: Array<{ id: number; username: string }> }>('GET', '/api/users')).body.users;
      const op1 = users.find((u) => u.username === 'op1')!;
      const noToken = await fetch(`${base()}/users/${op1.id}/password`, { method: 'POST', redirect: 'manual', headers: { Cookie: await cookieHeader(admin, base()), 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ password: 'new-pass-123' }) });
      assert.equal(noToken.status, 403);

      await page.goto(`${base()}/users`);
      await page.fill(`form[action="/users/${op1.id}/password"] input[name=password]`, 'new-pass-123');
      await submitAndWait(page, `form[action="/users/${op1.id}/password"] button[type=submit]`);
      assert.match(await page.textContent('.flash') ?? '', /Password of op1 reset; 1 open session was logged out/);
      await op.goto(`${base()}/jobs`);
      assert.equal(new URL(op.url()).pathname, '/login', 'their session ended');
      await loginWithForm(op, base(), 'op1', 'operator-pass-1');
      assert.equal(new URL(op.url()).pathname, '/login', 'the old password no longer works');
      await loginWithForm(op, base(), 'op1', 'new-pass-123');
      assert.equal(new URL(op.url()).pathname, '/');
    } finally {
      await theirs.close();
    }
  });

  test('saving SMTP says which starter rules it added, and a rule like one of them is not added twice', async () => {
    await page.goto(`${base()}/settings`);
    await page.fill('#smtp-host', '127.0.0.1');
    await page.fill('#smtp-port', '2525');
    await page.selectOption('#smtp-secure', 'none');
    await page.fill('#smtp-from', 'ops@example.com');
    await page.fill('#smtp-to', 'oncall@example.com');
    await submitAndWait(page, 'form[action="/settings/smtp"] button[type=submit]');
    assert.match(await page.textContent('.flash') ?? '', /SMTP settings saved\. 3 starter alert rules were added so that mails go out: Node offline, Job failed, Disk over 90 %/);
    await page.goto(`${base()}/alerts`);
    await page.selectOption('#r-kind', 'node_offline');
    await page.selectOption('#r-scope', 'all');
    await submitAndWait(page, 'form[data-rule-form] button[type=submit]');
    // The page may also carry the SMTP check's warning (nothing listens on 2525): read every alert.
    assert.match((await page.locator('[role=alert]').allTextContents()).join('\n'), /Rule 'Node offline' already watches this/);
    const rules = await master.api<{ rules: unknown[] }>('GET', '/api/alerts/rules');
    assert.equal(rules.body.rules.length, 3, 'no duplicate rule');
  });

  test('charts span their window, draw failures red, and an empty one says why', async () => {
    await page.goto(`${base()}/nodes/n1`);
    await page.waitForSelector('[data-chart="cpu"][data-x-max]', { timeout: 30_000 });
    const span = await page.$eval('[data-chart="cpu"]', (e) => ({ min: Number((e as HTMLElement).dataset.xMin), max: Number((e as HTMLElement).dataset.xMax) }));
    assert.ok(Math.abs(span.max - span.min - 3600) < 5, `last hour is one hour wide: ${JSON.stringify(span)}`);
    assert.ok(Math.abs(span.max - Date.now() / 1000) < 600, `…and ends now: ${JSON.stringify(span)}`);
    await page.selectOption('[data-node-charts] [data-range]', '30d');
    // Hourly points: none complete yet on a master minutes old.
    await waitText('[data-chart="cpu"] [data-chart-empty]', /No samples yet — this range shows one point per hour/, 30_000);

    await page.goto(`${base()}/`);
    await page.waitForSelector('[data-chart="cluster-jobs"] .u-legend', { timeout: 30_000 });
    const colours = await page.$$eval('[data-chart="cluster-jobs"] .u-legend .u-series', (rows) => Object.fromEntries(rows.map((r) => [
      r.querySelector('.u-label')?.textContent ?? '', getComputedStyle(r.querySelector('.u-marker')!).borderColor])));
    assert.equal(colours.failed, 'rgb(220, 38, 38)', JSON.stringify(colours));
    assert.equal(colours.finished, 'rgb(22, 163, 74)', JSON.stringify(colours));
  });

  test('a node that stops answering says so at once, then greys its last figures when offline', async () => {
    const cookie = await cookieHeader(admin, base());
    const html = async (path: string) => (await fetch(base() + path, { headers: { Cookie: cookie } })).text();
    await n2!.stop();
    n2 = undefined;
    const failing = await waitFor('n2 to miss a heartbeat', async () => {
      const n = (await master.api<{ nodes: Array<NodeView & { failing_since: number | null }> }>('GET', '/api/nodes')).body.nodes.find((x) => x.name === 'n2');
      return n && n.failing_since !== null ? n : undefined;
    }, 30_000, 100);
    if (failing.status === 'online') {
      // Between the first failed heartbeat and the offline verdict (8 s): not a green "online".
      const nodes = await html('/nodes');
      const row = /<tr>\s*<td><a href="\/nodes\/n2">[\s\S]*?<\/tr>/.exec(nodes)?.[0] ?? '';
      if (!/data-node-status="offline"/.test(row)) {
        assert.match(row, /data-node-status="failing">not answering<\/span> <span[^>]*>since <time/, row);
        assert.doesNotMatch(row, /data-node-status="online"/);
      }
    }
    await waitNodeStatus(master, 'n2', 'offline', 60_000);
    await page.goto(`${base()}/nodes`);
    const n2row = page.locator('table.list tbody tr', { has: page.locator('a[href="/nodes/n2"]') });
    assert.equal(await n2row.locator('[data-node-status="offline"]').count(), 1);
    assert.ok(await n2row.locator('[data-stale]').count() >= 1, 'its last CPU is greyed, not shown as current');
    assert.match(await n2row.textContent() ?? '', /last seen/);
    assert.doesNotMatch(await n2row.textContent() ?? '', /">|UTC"/, 'no markup leaks into the text');
    await screenshot(page, 'nodes-offline-1280');
    const n1row = page.locator('table.list tbody tr', { has: page.locator('a[href="/nodes/n1"]') });
    assert.equal(await n1row.locator('[data-stale]').count(), 0);
    await page.goto(`${base()}/projects`);
    const gen = page.locator('table.list tbody tr', { has: page.locator('a[href="/projects/gen"]') });
    assert.equal((await gen.locator('[data-on-nodes]').textContent())?.replace(/\s+/g, ' ').trim(), 'on 2 of 2 nodes, 1 offline');
    await page.goto(`${base()}/nodes/n2`);
    assert.match(await page.textContent('[data-stale-note]') ?? '', /Not current/);
    await screenshot(page, 'node-offline-1280');
  });

  test('no page raised an error (no 404 from the live job page), no unexpected dialog', () => {
    assert.deepEqual(problems.errors, []);
    assert.deepEqual(problems.dialogs.filter((d) => !/confirm: Set a new password for op1/.test(d)), []);
  });
});

describe('the job page does not wait for the next heartbeat to show what the log already says', { timeout: 150_000 }, () => {
  let master: MasterHandle;
  let slave: SlaveHandle;
  let browser: Browser;
  const work = tempDir('spiderplane-ui-nudge-');
  const problems: PageProblems = { errors: [], dialogs: [] };

  before(async () => {
    // Heartbeats every 5 minutes: without help, the master would learn of the run's start and end
    // only then, and the badge would say "pending" under a log that already says "Spider closed".
    const [m, egg, b] = await Promise.all([startMaster({ args: ['--heartbeat-interval', '300', '--offline-after', '900'] }), buildDemoEgg(work), launchBrowser()]);
    master = m;
    browser = b;
    slave = await joinSlave(master, 'n1');
    assert.equal((await uploadVersion(master, 'demo', 'r1', await readFile(egg))).status, 201);
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await slave?.stop().catch(() => undefined);
    await master?.stop().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  test('the badge turns to the outcome soon after the log shows the spider closed', async () => {
    const ctx = await newContext(browser, problems, 'admin');
    const page = await ctx.newPage();
    await loginWithForm(page, master.url, ADMIN.user, ADMIN.password);
    const r = await master.api<{ runs: RunView[] }>('POST', '/api/runs', { project: 'demo', spider: 'quick' });
    const job = r.body.runs[0]!.job;
    await page.goto(`${master.url}/jobs/${job}`);
    await page.waitForFunction(() => /Spider closed/.test(document.querySelector('#log')?.textContent ?? ''), undefined, { polling: 100, timeout: 60_000 });
    // Well before the next heartbeat (5 min), the stream asked the node and the page shows the end.
    await page.waitForFunction(() => document.querySelector('[data-job-state] .badge')?.textContent === 'succeeded', undefined, { polling: 100, timeout: 90_000 });
    // The log's status line follows the stream's end event, which may come a moment after the state.
    await page.waitForFunction((sel) => /The run is over \(succeeded\)/.test(document.querySelector(sel)?.textContent ?? ''), LOG_STATUS, { polling: 100, timeout: 60_000 });
    assert.deepEqual(problems.errors, []);
    await ctx.close();
  });
});

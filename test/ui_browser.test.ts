// End-to-end tests of the admin web UI in real headless Chromium against a real master and a real slave:
// login and its refusals, the upload form with a real Scrapy egg, the cron editor, run now with a live log,
// cancel, roles, CSRF, the login rate limit, security headers, escaping, and one screenshot per page.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startMaster, basic, ADMIN, type MasterHandle } from './helpers/master_process.ts';
import { tempDir, waitFor, type SlaveHandle } from './helpers/slave_process.ts';
import { joinSlave, deployNodePackage, waitRunState, sleep } from './helpers/master_slave_pair.ts';
import { buildDemoEgg } from './helpers/fixtures.ts';
import {
  launchBrowser, newContext, screenshot as takeScreenshot, layoutProblems, loginWithForm, submitAndWait, cookieHeader, csrfOf, loginByHttp, type PageProblems,
} from './helpers/browser.ts';

const VIEWER = { user: 'viewer1', password: 'viewer-password-1' };
const XSS = '<img src=x onerror=alert(1)>';

describe('admin web UI in headless Chromium', { timeout: 300_000 }, () => {
  let master: MasterHandle;
  let slave: SlaveHandle;
  let browser: Browser;
  let admin: BrowserContext;
  let page: Page;
  let eggPath: string;
  const work = tempDir('spiderplane-ui-');
  const problems: PageProblems = { errors: [], dialogs: [] };
  // What the tests create, for the later ones (logged-out checks visit the real pages).
  const made: { deployment?: string; schedule?: string; job?: string } = {};
  const base = () => master.url;
  // Every photographed page is also measured: tables cut off by their panel, sideways scrolling, raw JSON.
  const layout: string[] = [];
  const screenshot = async (p: Page, name: string) => {
    await takeScreenshot(p, name);
    for (const problem of await layoutProblems(p)) layout.push(`${name} (${new URL(p.url()).pathname}): ${problem}`);
  };

  before(async () => {
    const [m, egg, b] = await Promise.all([
      startMaster({ args: ['--heartbeat-interval', '0.5'] }),
      buildDemoEgg(work),
      launchBrowser(),
    ]);
    master = m;
    eggPath = egg;
    browser = b;
    slave = await joinSlave(master, 'n1');
    admin = await newContext(browser, problems, 'admin');
    page = await admin.newPage();
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await slave?.stop().catch(() => undefined);
    await master?.stop().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  test('a wrong password is refused on the login page, the right one logs in', async () => {
    await page.goto(base() + '/');
    assert.match(new URL(page.url()).pathname, /^\/login$/, 'logged out, / goes to the login page');
    await screenshot(page, 'login');
    await loginWithForm(page, base(), ADMIN.user, 'not-the-password');
    assert.equal(new URL(page.url()).pathname, '/login');
    assert.match(await page.textContent('[role=alert]') ?? '', /Wrong username or password/);
    assert.equal(await page.inputValue('#username'), ADMIN.user, 'the username is kept');
    assert.equal(await page.inputValue('#password'), '', 'the password is not echoed back');
    assert.equal((await admin.cookies(base())).some((c) => c.name === 'sp_session'), false, 'no session after a wrong password');

    await loginWithForm(page, base(), ADMIN.user, ADMIN.password);
    assert.equal(new URL(page.url()).pathname, '/');
    const session = (await admin.cookies(base())).find((c) => c.name === 'sp_session');
    assert.ok(session, 'a session cookie');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Lax');
    assert.match(await page.textContent('.who') ?? '', /Signed in as\s+admin/);
    assert.match(await page.textContent('h1') ?? '', /\S/);
  });

  test('upload a real Scrapy egg through the form: project and version prefilled, deployed to n1', async () => {
    await page.goto(base() + '/projects');
    assert.ok(await page.isVisible('form[data-upload-form]'), 'an admin sees the upload form');
    await page.setInputFiles('#egg', eggPath);
    // The browser reads the egg's entry points: the project is its settings module's package.
    await page.waitForFunction(() => (document.querySelector<HTMLInputElement>('#project')?.value ?? '') !== '', undefined, { polling: 100 });
    assert.equal(await page.inputValue('#project'), 'demo', 'project prefilled from EGG-INFO/entry_points.txt');
    const guessed = await page.inputValue('#version');
    assert.match(guessed, /\S/, 'a version is prefilled');
    await page.waitForFunction(() => /settings module demo\.settings/.test(document.querySelector('[data-upload-hint]')?.textContent ?? ''), undefined, { polling: 100 });
    await page.fill('#version', 'r1');
    await submitAndWait(page, 'form[data-upload-form] button[type=submit]');
    const m = /\/deployments\/(\d+)$/.exec(new URL(page.url()).pathname);
    assert.ok(m, `after upload the browser is on a deployment page, not ${page.url()}`);
    made.deployment = m[1]!;
    assert.match(await page.textContent('.flash') ?? '', /demo r1 uploaded/);
    assert.match(await page.textContent('h1') ?? '', /Deploying demo r1/);
    // The page follows the deployment live: n1's row turns ok.
    await page.waitForFunction(() => document.querySelector('tr[data-node="n1"] [data-field="state"]')?.textContent?.trim() === 'ok', undefined, { polling: 100, timeout: 60_000 });
    await page.waitForFunction(() => document.querySelector('[data-deploy-state]')?.textContent?.trim() === 'finished', undefined, { polling: 100, timeout: 60_000 });
    assert.equal((await page.textContent('tr[data-node="n1"] [data-field="spiders"]'))?.trim(), '4', 'n1 lists the egg\'s 4 spiders');
    await screenshot(page, 'deployment');

    await page.goto(base() + '/projects/demo');
    const tags = await page.$$eval('.tag', (els) => els.map((e) => e.textContent));
    assert.deepEqual(tags, ['broken', 'ignoresigint', 'quick', 'slow']);
    assert.match(await page.textContent('table.list tbody tr') ?? '', /r1[\s\S]*n1/, 'version r1 is on n1');
    await screenshot(page, 'project');
    await page.goto(base() + '/projects');
    assert.match(await page.textContent('table.list') ?? '', /demo[\s\S]*r1[\s\S]*Scrapy egg[\s\S]*on 1 of 1 node\b/);
    await screenshot(page, 'projects');
  });

  test('cron editor: a bad expression shows croner\'s reason and is refused; a good one previews and saves', async () => {
    await page.goto(base() + '/schedules/new?project=demo');
    assert.equal(await page.inputValue('#s-project'), 'demo');
    await page.selectOption('#s-spider', 'quick');
    await page.fill('#s-name', 'nightly demo');

    // Bad: minute 61. The preview shows croner's reason as you type.
    await page.fill('#s-cron', '61 * * * *');
    await page.waitForSelector('[data-cron-preview] [data-cron-error]');
    const reason = (await page.textContent('[data-cron-preview] [data-cron-error]')) ?? '';
    assert.match(reason, /61|range|minute/i, `croner's reason: ${reason}`);
    assert.equal(await page.$eval('#s-cron', (e) => (e as HTMLInputElement).validity.valid), false, 'the field is marked invalid');
    // The browser does not submit an invalid field ...
    await page.click('form[data-schedule-form] button[type=submit]');
    await sleep(300);
    assert.equal(new URL(page.url()).pathname, '/schedules/new');
    // ... and the server refuses it too when the browser's check is bypassed.
    await Promise.all([page.waitForNavigation(), page.$eval('form[data-schedule-form]', (f) => (f as HTMLFormElement).submit())]);
    assert.equal(new URL(page.url()).pathname, '/schedules');
    const refused = (await page.textContent('[data-form-error]')) ?? '';
    assert.match(refused, /^Cron expression: /, refused);
    assert.equal(await page.inputValue('#s-cron'), '61 * * * *', 'the refused form keeps what was typed');
    assert.equal(await page.inputValue('#s-name'), 'nightly demo');

    // Too few fields.
    await page.fill('#s-cron', '* * *');
    await page.waitForFunction((before) => {
      const now = document.querySelector('[data-cron-preview] [data-cron-error]')?.textContent ?? '';
      return now !== '' && now !== before;
    }, reason, { polling: 100 });
    const fewFields = (await page.textContent('[data-cron-error]')) ?? '';
    assert.match(fewFields, /\S/, 'a reason for too few fields');

    // Good, on a fresh editor: words and the next five runs.
    await page.goto(base() + '/schedules/new?project=demo');
    await page.waitForSelector('[data-cron-preview] [data-cron-next]');
    await page.selectOption('#s-spider', 'quick');
    await page.fill('#s-name', 'nightly demo');
    await page.fill('#s-cron', '*/30 * * * * *');
    await page.waitForFunction(() => /30 seconds/i.test(document.querySelector('[data-cron-preview] .words')?.textContent ?? '')
      && document.querySelectorAll('[data-cron-preview] [data-cron-next] li').length === 5, undefined, { polling: 100 });
    await page.fill('#s-cron', '0 3 * * *');
    await page.waitForFunction(() => /03:00/.test(document.querySelector('[data-cron-preview] .words')?.textContent ?? '')
      && document.querySelectorAll('[data-cron-preview] [data-cron-next] li').length === 5, undefined, { polling: 100 });
    const next = await page.$$eval('[data-cron-preview] [data-cron-next] li', (els) => els.map((e) => e.textContent ?? ''));
    assert.equal(new Set(next).size, 5, `five distinct next runs: ${next.join(' | ')}`);
    assert.equal(await page.$eval('#s-cron', (e) => (e as HTMLInputElement).validity.valid), true);
    await screenshot(page, 'cron-editor');

    await submitAndWait(page, 'form[data-schedule-form] button[type=submit]');
    const m = /^\/schedules\/(\d+)$/.exec(new URL(page.url()).pathname);
    assert.ok(m, `saved: redirected to the schedule, not ${page.url()}`);
    made.schedule = m[1]!;
    assert.match(await page.textContent('.flash') ?? '', /created/);
    assert.equal(await page.inputValue('#s-cron'), '0 3 * * *');
    assert.equal(await page.inputValue('#s-name'), 'nightly demo');
    assert.equal(await page.inputValue('#s-project'), 'demo');
    assert.equal(await page.inputValue('#s-spider'), 'quick');
    assert.match(await page.textContent('[data-cron-preview] .words') ?? '', /03:00/);

    await page.goto(base() + '/schedules');
    assert.match(await page.textContent('main') ?? '', /nightly demo[\s\S]*0 3 \* \* \*/);
    await screenshot(page, 'schedules');
  });

  test('run a spider with args from its project page, watch the log live, cancel it', async () => {
    await deployNodePackage(master, work, 'gen', '1');
    await page.goto(base() + '/projects/gen');
    await page.selectOption('#run-spider', 'count');
    const addArg = page.locator('[data-kv="args"] button', { hasText: '+ Add argument' });
    for (let i = 0; i < 3; i++) await addArg.click();
    const rows = page.locator('[data-kv="args"] .kv-row');
    assert.equal(await rows.count(), 3);
    // Far more items than the test waits for: it runs until the test cancels it, however slow the machine.
    const pairs: Array<[string, string]> = [['n', '100000'], ['interval_ms', '250'], ['label', XSS]];
    for (const [i, [k, v]] of pairs.entries()) {
      await rows.nth(i).locator('input[name="args_key"]').fill(k);
      await rows.nth(i).locator('input[name="args_value"]').fill(v);
    }
    await submitAndWait(page, 'form[data-run-form] button[type=submit]');
    const m = /^\/jobs\/([^/]+)$/.exec(new URL(page.url()).pathname);
    assert.ok(m, `run now leads to the job page, not ${page.url()}`);
    made.job = m[1]!;
    assert.match(await page.textContent('.flash') ?? '', /Started on n1/);

    // The log appears and grows while the job runs.
    await page.waitForFunction(() => /count item 2\b/.test(document.querySelector('#log')?.textContent ?? ''), undefined, { polling: 100, timeout: 60_000 });
    const first = (await page.textContent('#log')) ?? '';
    await page.waitForFunction((n) => (document.querySelector('#log')?.textContent ?? '').length > n, first.length, { polling: 100, timeout: 60_000 });
    const second = (await page.textContent('#log')) ?? '';
    assert.ok(second.length > first.length && second.startsWith(first), 'the log grew by appending');
    assert.match(second, /count spider: 100000 items every 250 ms/);
    assert.equal(await page.$eval('[data-log-dot]', (e) => e.classList.contains('live')), true, 'the status dot is live');
    assert.equal(await page.textContent('[data-log-status]'), 'Live');
    await page.waitForFunction(() => document.querySelector('[data-job-state] .badge')?.textContent?.trim() === 'running', undefined, { polling: 100, timeout: 60_000 });
    assert.doesNotMatch(second, /count spider done/, 'the job is still running while the log grows');

    // User-supplied strings are text, not markup.
    const shown = await page.$$eval('.facts dd.mono', (els) => els.map((e) => e.textContent));
    assert.ok(shown.includes(XSS), `the arg is shown as text: ${JSON.stringify(shown)}`);
    assert.equal(await page.$$eval('img[src="x"]', (els) => els.length), 0, 'no <img> was injected');
    assert.doesNotMatch(await page.content(), /<img src=x onerror/, 'the markup is escaped in the DOM');
    await screenshot(page, 'job');

    // Cancel (the page asks for confirmation; the dialog handler accepts it).
    const dialogsBefore = problems.dialogs.length;
    await submitAndWait(page, 'form[action$="/cancel"] button[type=submit]');
    assert.equal(problems.dialogs.length, dialogsBefore + 1, 'the cancel asked for confirmation');
    assert.match(problems.dialogs.at(-1)!, /^\[admin\] confirm: Cancel this job\?/);
    assert.match(await page.textContent('.flash') ?? '', /Cancel sent/);
    await page.waitForFunction(() => document.querySelector('[data-job-state] .badge')?.textContent?.trim() === 'cancelled', undefined, { polling: 100, timeout: 60_000 });
    const run = await waitRunState(master, made.job, (r) => r.state === 'finished', 'finished');
    assert.equal(run.outcome, 'cancelled');
    await page.waitForFunction(() => /The run is/.test(document.querySelector('[data-log-status]')?.textContent ?? ''), undefined, { polling: 100, timeout: 60_000 });
    assert.equal(await page.$eval('[data-log-dot]', (e) => e.classList.contains('live')), false);
    assert.match((await page.textContent('#log')) ?? '', /got SIGINT after \d+ items/);
    await page.reload();
    assert.equal((await page.textContent('[data-job-state] .badge'))?.trim(), 'cancelled');
    assert.equal(await page.$$eval('form[action$="/cancel"]', (els) => els.length), 0, 'no cancel button on a finished job');
  });

  test('the other pages render (and are photographed)', async () => {
    await page.goto(base() + '/jobs');
    assert.match(await page.textContent('table.list') ?? '', /gen \/ count[\s\S]*n1[\s\S]*cancelled/);
    await screenshot(page, 'jobs');
    await page.goto(base() + '/nodes');
    assert.match(await page.textContent('table') ?? '', /n1[\s\S]*online/);
    await screenshot(page, 'nodes');
    await page.goto(base() + '/nodes/n1');
    await page.waitForFunction(() => document.querySelectorAll('[data-node-charts] canvas, [data-node-charts] .uplot').length > 0
      || /No heartbeats|No data/.test(document.querySelector('[data-node-charts]')?.textContent ?? ''), undefined, { polling: 100, timeout: 60_000 });
    await screenshot(page, 'node');
    await page.goto(base() + '/settings');
    await screenshot(page, 'settings');
    await page.goto(base() + '/');
    assert.match(await page.textContent('main') ?? '', /nightly demo/, 'the dashboard lists the next scheduled run');
    await screenshot(page, 'dashboard');
  });

  test('a viewer cannot deploy: no upload form, a forged upload is 403, the API says 403', async () => {
    await page.goto(base() + '/users');
    await page.fill('#new-username', VIEWER.user);
    await page.fill('#new-password', VIEWER.password);
    await page.selectOption('#new-role', 'viewer');
    await submitAndWait(page, 'form[action="/users"] button[type=submit]');
    assert.match(await page.textContent('.flash') ?? '', /User viewer1 created/);
    assert.match(await page.textContent('table.list') ?? '', /viewer1/);
    await screenshot(page, 'users');

    const ctx = await newContext(browser, problems, 'viewer');
    try {
      const vp = await ctx.newPage();
      await loginWithForm(vp, base(), VIEWER.user, VIEWER.password, '/login?next=%2Fprojects');
      assert.equal(new URL(vp.url()).pathname, '/projects', 'login returns to ?next');
      assert.match(await vp.textContent('.who') ?? '', /viewer1[\s\S]*viewer/);
      assert.equal(await vp.$$eval('form[data-upload-form], input[type=file]', (els) => els.length), 0, 'no upload form for a viewer');
      await vp.goto(base() + '/projects/gen');
      assert.equal(await vp.$$eval('form[data-run-form], form[action*="/deploy"], form[action*="/delete"]', (els) => els.length), 0, 'no run/deploy/delete forms');
      const csrf = await csrfOf(vp);
      assert.ok(csrf.length > 10, 'the viewer has a CSRF token');
      const cookie = await cookieHeader(ctx, base());
      const form = new FormData();
      form.set('_csrf', csrf);
      form.set('project', 'demo');
      form.set('version', 'forged');
      form.set('egg', new Blob([new Uint8Array(await readFile(eggPath))]), 'demo.egg');
      const forged = await fetch(base() + '/projects/upload', { method: 'POST', body: form, headers: { Cookie: cookie }, redirect: 'manual' });
      assert.equal(forged.status, 403, 'a viewer\'s upload is forbidden even with a valid CSRF token');
      assert.match(await forged.text(), /needs the operator role/);
      const viaApi = await master.api('POST', '/api/schedules/' + made.schedule + '/run', {}, basic(VIEWER.user, VIEWER.password));
      assert.equal(viaApi.status, 403);
      const projects = await master.api('GET', '/api/projects');
      assert.equal(projects.status, 200);
      assert.doesNotMatch(JSON.stringify(projects.body), /forged/, 'nothing was stored');
      const edit = await vp.goto(base() + '/schedules/new');
      assert.equal(edit?.status(), 403, 'the schedule editor is for operators');
      await vp.goto(base() + `/schedules/${made.schedule}`);
      assert.equal(await vp.$eval('form[data-schedule-form] fieldset', (f) => (f as HTMLFieldSetElement).disabled), true, 'a viewer sees the schedule read-only');
    } finally {
      await ctx.close();
    }
  });

  test('the add-user form checks the username in the browser (its pattern attribute compiles)', async () => {
    await page.goto(base() + '/users');
    await page.fill('#new-username', 'bad name!');
    const validity = await page.$eval('#new-username', (e) => ({ valid: (e as HTMLInputElement).validity.valid, message: (e as HTMLInputElement).validationMessage }));
    assert.equal(validity.valid, false, 'a username with a space and "!" fails the pattern before it reaches the server');
    await page.fill('#new-username', 'ok.name-1@x');
    assert.equal(await page.$eval('#new-username', (e) => (e as HTMLInputElement).validity.valid), true);
  });

  test('a POST without the CSRF token is refused, with it accepted', async () => {
    const cookie = await cookieHeader(admin, base());
    await page.goto(base() + '/schedules');
    const csrf = await csrfOf(page);
    const form = (body: Record<string, string>) => ({
      method: 'POST', redirect: 'manual' as const, body: new URLSearchParams(body),
      headers: { Cookie: cookie, 'Content-Type': 'application/x-www-form-urlencoded', Referer: base() + '/schedules' },
    });
    const noToken = await fetch(`${base()}/schedules/${made.schedule}/toggle`, form({}));
    assert.equal(noToken.status, 403);
    assert.match(await noToken.text(), /Form expired/);
    const wrongToken = await fetch(`${base()}/schedules/${made.schedule}/toggle`, form({ _csrf: csrf.slice(0, -2) + 'xx' }));
    assert.equal(wrongToken.status, 403);
    const s1 = await master.api<{ schedule: { enabled: boolean } }>('GET', `/api/schedules/${made.schedule}`);
    assert.equal(s1.body.schedule.enabled, true, 'the refused toggles changed nothing');

    const apiNoHeader = await fetch(`${base()}/api/schedules/${made.schedule}/run`, { method: 'POST', headers: { Cookie: cookie, 'Content-Type': 'application/json' }, body: '{}' });
    assert.equal(apiNoHeader.status, 403);
    assert.match(await apiNoHeader.text(), /CSRF/);
    const previewNoHeader = await fetch(`${base()}/api/cron/preview`, { method: 'POST', headers: { Cookie: cookie, 'Content-Type': 'application/json' }, body: JSON.stringify({ cron: '0 3 * * *' }) });
    assert.equal(previewNoHeader.status, 403);
    const previewWithHeader = await fetch(`${base()}/api/cron/preview`, { method: 'POST', headers: { Cookie: cookie, 'X-CSRF-Token': csrf, 'Content-Type': 'application/json' }, body: JSON.stringify({ cron: '0 3 * * *' }) });
    assert.equal(previewWithHeader.status, 200);

    const ok = await fetch(`${base()}/schedules/${made.schedule}/toggle`, form({ _csrf: csrf }));
    assert.equal(ok.status, 302);
    const s2 = await master.api<{ schedule: { enabled: boolean } }>('GET', `/api/schedules/${made.schedule}`);
    assert.equal(s2.body.schedule.enabled, false, 'with the token the toggle works');
  });

  test('security headers on pages', async () => {
    const cookie = await cookieHeader(admin, base());
    for (const path of ['/', '/login', `/jobs/${made.job}`, '/schedules/new', '/users']) {
      // The login page as a visitor sees it (a logged-in user is sent on from there).
      const r = await fetch(base() + path, { headers: path === '/login' ? {} : { Cookie: cookie }, redirect: 'manual' });
      await r.arrayBuffer();
      assert.equal(r.status, 200, path);
      const csp = r.headers.get('content-security-policy') ?? '';
      const scriptSrc = /(?:^|;)\s*script-src ([^;]*)/.exec(csp)?.[1];
      assert.ok(scriptSrc, `${path}: CSP has script-src: ${csp}`);
      assert.doesNotMatch(scriptSrc, /unsafe-inline|unsafe-eval/, path);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.equal(r.headers.get('x-frame-options'), 'DENY', path);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
    }
  });

  test('logout ends the session', async () => {
    const cookie = await cookieHeader(admin, base());
    await page.goto(base() + '/');
    await submitAndWait(page, '.who form button[type=submit]');
    assert.equal(new URL(page.url()).pathname, '/login');
    await page.goto(base() + '/jobs');
    assert.equal(new URL(page.url()).pathname, '/login');
    const old = await fetch(base() + '/jobs', { headers: { Cookie: cookie }, redirect: 'manual' });
    assert.equal(old.status, 302, 'the old session cookie is dead on the server too');
    assert.match(old.headers.get('location') ?? '', /\/login/);
  });

  test('no page is reachable logged out: the browser lands on /login, fetch gets 302, /api 401', async () => {
    const paths = ['/', '/nodes', '/nodes/n1', '/projects', '/projects/demo', '/schedules', '/schedules/new', `/schedules/${made.schedule}`,
      '/jobs', `/jobs/${made.job}`, '/settings', '/users', `/deployments/${made.deployment}`];
    const ctx = await newContext(browser, problems, 'anonymous');
    try {
      const p = await ctx.newPage();
      for (const path of paths) {
        await p.goto(base() + path);
        const u = new URL(p.url());
        assert.equal(u.pathname, '/login', `${path} -> ${p.url()}`);
        assert.equal(u.searchParams.get('next'), path, `${path}: login returns there`);
        const text = await p.textContent('body') ?? '';
        for (const secret of ['nightly demo', 'viewer1', made.job!, 'count']) assert.ok(!text.includes(secret), `${path} leaks ${secret}`);
      }
    } finally {
      await ctx.close();
    }
    for (const path of paths) {
      const r = await fetch(base() + path, { redirect: 'manual' });
      const body = await r.text();
      assert.equal(r.status, 302, path);
      assert.match(r.headers.get('location') ?? '', /^\/login\?next=/, path);
      assert.doesNotMatch(body, /nightly demo|viewer1/, path);
    }
    for (const path of ['/api/nodes', '/api/runs', `/api/runs/${made.job}/log/stream`, '/api/schedules', '/api/users']) {
      const r = await fetch(base() + path);
      await r.arrayBuffer();
      assert.equal(r.status, 401, path);
    }
    const post = await fetch(`${base()}/projects/upload`, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ project: 'x' }) });
    assert.equal(post.status, 302, 'a logged-out POST goes to the login page too');
  });

  test('the login rate limit kicks in after repeated wrong passwords (429 + Retry-After)', async () => {
    let limited: Response | null = null;
    let tries = 0;
    for (; tries < 12 && !limited; tries++) {
      const { res } = await loginByHttp(base(), VIEWER.user, `wrong-${tries}`);
      if (res.status === 429) limited = res;
      else assert.equal(res.status, 401, `try ${tries}`);
    }
    assert.ok(limited, 'rate limited within 12 tries');
    assert.ok(tries >= 5, `a few free tries first (limited at try ${tries})`);
    const retryAfter = Number(limited.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After: ${limited.headers.get('retry-after')}`);
    // Even the right password waits now.
    const t0 = Date.now();
    const right = await loginByHttp(base(), VIEWER.user, VIEWER.password);
    if (Date.now() - t0 < retryAfter * 1000 - 200) assert.equal(right.res.status, 429);
  });

  test('every photographed page looks like a product: no table cut off, no sideways scroll, no raw JSON', () => {
    assert.deepEqual(layout, []);
  });

  test('no page raised an error or an unexpected dialog', () => {
    assert.deepEqual(problems.errors, []);
    assert.deepEqual(problems.dialogs.filter((d) => !/confirm: Cancel this job\?/.test(d)), [], 'only the cancel confirmation; no alert() from injected markup');
  });
});

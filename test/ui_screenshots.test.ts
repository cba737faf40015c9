// Every page of the admin UI photographed at desktop width (1280) and phone width (420) into
// test-artifacts/screenshots/NAME-1280.png and NAME-420.png (`npm run screenshots`), each measured in
// the live DOM: no sideways page scroll, no table cut off by its card, no raw JSON.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startMaster, ADMIN, type MasterHandle } from './helpers/master_process.ts';
import { tempDir, type SlaveHandle } from './helpers/slave_process.ts';
import { joinSlave, deployNodePackage, uploadVersion, waitRunState, type RunView } from './helpers/master_slave_pair.ts';
import { buildDemoEgg } from './helpers/fixtures.ts';
import { launchBrowser, newContext, loginWithForm, layoutProblems, SCREENSHOT_DIR, type PageProblems } from './helpers/browser.ts';

const WIDTHS = [{ width: 1280, height: 800 }, { width: 420, height: 860 }];

describe('every page, desktop and 420 px wide', { timeout: 240_000 }, () => {
  let master: MasterHandle;
  let slaves: SlaveHandle[] = [];
  let browser: Browser;
  let admin: BrowserContext;
  let page: Page;
  const work = tempDir('spiderplane-ui-shots-');
  const problems: PageProblems = { errors: [], dialogs: [] };
  const layout: string[] = [];
  const pages: Array<{ name: string; path: string; ready?: string }> = [];

  before(async () => {
    const [m, egg, b] = await Promise.all([startMaster({ args: ['--heartbeat-interval', '0.5'] }), buildDemoEgg(work), launchBrowser()]);
    master = m;
    browser = b;
    slaves = await Promise.all([joinSlave(master, 'n1'), joinSlave(master, 'n2')]);
    assert.equal((await uploadVersion(master, 'demo', 'r1', await readFile(egg))).status, 201);
    await deployNodePackage(master, work, 'gen', '1');
    const run = async (body: Record<string, unknown>) => {
      const r = await master.api<{ runs: RunView[] }>('POST', '/api/runs', body);
      const job = r.body.runs[0]!.job;
      await waitRunState(master, job, (x) => x.state === 'finished', 'finished', 60_000);
      return job;
    };
    const schedule = await master.api<{ schedule: { id: number } }>('POST', '/api/schedules', { name: 'demo quick nightly', cron: '0 3 * * *', timezone: 'Europe/Berlin', project: 'demo', spider: 'quick' });
    const fired = await master.api<{ runs: RunView[] }>('POST', `/api/schedules/${schedule.body.schedule.id}/run`, {});
    const [scrapyJob, brokenJob, genericJob] = await Promise.all([
      run({ project: 'demo', spider: 'quick', args: { count: '12' } }),
      run({ project: 'demo', spider: 'broken' }),
      run({ project: 'gen', spider: 'hello' }),
    ]);
    await waitRunState(master, fired.body.runs[0]!.job, (x) => x.state === 'finished', 'finished', 60_000);
    await master.api('POST', '/api/users', { username: 'viewer1', password: 'viewer-password-1', role: 'viewer' });
    const rule = await master.api<{ rule: { id: number } }>('POST', '/api/alerts/rules', { kind: 'cpu', threshold: 95, duration_seconds: 60, name: 'CPU over 95 %' });
    await master.api('POST', '/api/services', { name: 'counter', project: 'gen', spider: 'count', args: { n: '100000', interval_ms: '2000' }, replicas: 2 });
    pages.push(
      { name: 'dashboard', path: '/', ready: '[data-chart="cluster-cpu"] > *' },
      { name: 'nodes', path: '/nodes' },
      { name: 'node', path: '/nodes/n1', ready: '[data-chart="cpu"] > *' },
      { name: 'projects', path: '/projects' },
      { name: 'project', path: '/projects/demo' },
      { name: 'deployment', path: '/deployments/1' },
      { name: 'schedules', path: '/schedules' },
      { name: 'schedule-new', path: '/schedules/new', ready: '[data-cron-preview] > *' },
      { name: 'schedule', path: `/schedules/${schedule.body.schedule.id}`, ready: '[data-cron-preview] > *' },
      { name: 'jobs', path: '/jobs' },
      { name: 'job-scrapy', path: `/jobs/${scrapyJob}`, ready: '[data-job-items] table' },
      { name: 'job-errors', path: `/jobs/${brokenJob}`, ready: '[data-job-errors] .error-item' },
      { name: 'job-generic', path: `/jobs/${genericJob}`, ready: '[data-job-items] table' },
      { name: 'settings', path: '/settings' },
      { name: 'users', path: '/users' },
      { name: 'services', path: '/services' },
      { name: 'alerts', path: '/alerts' },
      { name: 'alert-rule', path: `/alerts/rules/${rule.body.rule.id}` },
      { name: 'alert-history', path: '/alerts/history' },
    );
    admin = await newContext(browser, problems, 'admin');
    page = await admin.newPage();
    await loginWithForm(page, master.url, ADMIN.user, ADMIN.password);
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await Promise.all(slaves.map((s) => s.stop().catch(() => undefined)));
    await master?.stop().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  const shoot = async (p: Page, name: string, width: number) => {
    await p.screenshot({ path: join(SCREENSHOT_DIR, `${name}-${width}.png`), fullPage: true });
    for (const problem of await layoutProblems(p)) layout.push(`${name} at ${width} px: ${problem}`);
  };

  test('the login page', async () => {
    const anon = await newContext(browser, problems, 'anonymous');
    try {
      const p = await anon.newPage();
      for (const size of WIDTHS) {
        await p.setViewportSize(size);
        await p.goto(master.url + '/login');
        await shoot(p, 'login', size.width);
      }
    } finally {
      await anon.close();
    }
  });

  test('every page after login', async () => {
    for (const size of WIDTHS) {
      await page.setViewportSize(size);
      for (const { name, path, ready } of pages) {
        await page.goto(master.url + path);
        if (ready) await page.waitForSelector(ready, { timeout: 30_000 });
        if (path.startsWith('/jobs/')) await page.waitForFunction(() => /The run is/.test(document.querySelector('[data-log-status]')?.textContent ?? ''), undefined, { polling: 100, timeout: 30_000 });
        await shoot(page, name, size.width);
      }
    }
  });

  test('at 420 px the navigation is on top and the content uses the width', async () => {
    await page.setViewportSize(WIDTHS[1]!);
    await page.goto(master.url + '/jobs');
    const box = await page.$eval('main', (m) => m.getBoundingClientRect().toJSON() as { x: number; width: number });
    assert.ok(box.x < 5 && box.width > 400, `main starts at the left edge and is ${box.width}px wide`);
  });

  test('no page scrolls sideways, cuts a table off or shows raw JSON, at either width', () => {
    assert.deepEqual(layout, []);
  });

  test('no page raised an error', () => {
    assert.deepEqual(problems.errors, []);
  });
});

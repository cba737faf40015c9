// The slave's pages and files carry security headers (nosniff, no framing, a CSP under which
// nothing served may run script but the Cancel button's confirm), and its Scrapyd pages still work
// in a real browser: no CSP violation, the confirm still asks before a cancel.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { startSlave, tempDir, waitForState, type SlaveHandle } from './helpers/slave_process.ts';
import { buildNodePackage } from './helpers/fixtures.ts';
import { launchBrowser, newContext, type PageProblems } from './helpers/browser.ts';

let slave: SlaveHandle;
let work: string;
let browser: Browser | null = null;

before(async () => {
  work = tempDir('spiderplane-headers-');
  slave = await startSlave();
  const form = new FormData();
  form.set('project', 'gen');
  form.set('version', '1');
  form.set('egg', new Blob([new Uint8Array(readFileSync(await buildNodePackage(join(work, 'pkg'))))]), 'gen.zip');
  const up = (await (await fetch(`${slave.url}/addversion.json`, { method: 'POST', body: form })).json()) as { status: string };
  assert.equal(up.status, 'ok');
});

after(async () => {
  await browser?.close();
  await slave?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

test('pages, files, API answers and the 404 page carry nosniff, no framing and the CSP', async () => {
  const r = await fetch(`${slave.url}/schedule.json`, { method: 'POST', body: new URLSearchParams({ project: 'gen', spider: 'hello', jobid: 'hdr' }) });
  await r.arrayBuffer();
  await waitForState(slave.url, 'hdr', 'finished', 60_000);
  for (const path of ['/', '/jobs', '/logs/', '/logs/gen/hello/hdr.log', '/items/gen/hello/hdr.jl', '/daemonstatus.json', '/no/such/page']) {
    const res = await fetch(`${slave.url}${path}`);
    await res.arrayBuffer();
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path);
    assert.equal(res.headers.get('x-frame-options'), 'DENY', path);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /frame-ancestors 'none'/, path);
    assert.match(csp, /default-src 'none'/, path);
    assert.doesNotMatch(csp, /script-src[^;]*'unsafe-inline'/, `${path}: no inline script beyond the one hash`);
  }
});

test('in Chromium: no CSP violation on the pages, and Cancel still asks "Are you sure?" before cancelling', async () => {
  // A spider that stays running until this test cancels it.
  const r = await fetch(`${slave.url}/schedule.json`, { method: 'POST', body: new URLSearchParams({ project: 'gen', spider: 'count', jobid: 'long', n: '1000000', interval_ms: '1000' }) });
  await r.arrayBuffer();
  await waitForState(slave.url, 'long', 'running', 60_000);
  browser = await launchBrowser();
  const problems: PageProblems = { errors: [], dialogs: [] };
  const context = await newContext(browser, problems, 'slave');
  // Every CSP violation the page sees, recorded from inside it (an init script is not subject to the CSP).
  await context.addInitScript(() => {
    const w = window as unknown as { cspViolations: string[] };
    w.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => w.cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`));
  });
  const page = await context.newPage();
  for (const path of ['/', '/logs/', '/jobs']) {
    const res = await page.goto(`${slave.url}${path}`);
    assert.equal(res?.status(), 200, path);
    assert.deepEqual(await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations), [], `${path}: CSP violations`);
  }
  // Chromium asks every page for /favicon.ico, which Scrapyd does not have either.
  const real = () => problems.errors.filter((e) => !/Failed to load resource: the server responded with a status of 404/.test(e));
  assert.deepEqual(real(), [], 'console errors');
  await Promise.all([page.waitForURL(/cancel\.json$/), page.locator('form[action$="/cancel.json"] input[type=submit]').first().click()]);
  assert.deepEqual(problems.dialogs, ['[slave] confirm: Are you sure?']);
  await waitForState(slave.url, 'long', 'finished', 60_000);
  assert.deepEqual(real(), []);
  await context.close();
});

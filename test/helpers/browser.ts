// Real headless Chromium (Debian's /usr/bin/chromium through playwright-core) for the admin web UI tests,
// plus the cookie-level HTTP helpers those tests use to play a forger or a brute-forcer.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ROOT } from './slave_process.ts';

export const CHROMIUM = '/usr/bin/chromium';
export const VIEWPORT = { width: 1280, height: 800 };
export const SCREENSHOT_DIR = join(ROOT, 'test-artifacts', 'screenshots');

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

/** Everything a page said that a user would call a problem: uncaught exceptions, console errors, dialogs. */
export interface PageProblems {
  errors: string[];
  dialogs: string[];
}

/**
 * A new browser context with its own cookie jar (a separate person), whose pages report into `problems`.
 * Dialogs are recorded; `confirm()` is accepted (the UI asks before cancel and delete), anything else dismissed.
 */
export async function newContext(browser: Browser, problems: PageProblems, label: string): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: VIEWPORT, locale: 'en-GB', timezoneId: 'Europe/Berlin' });
  context.on('page', (page) => watchPage(page, problems, label));
  context.setDefaultTimeout(60_000); // waits are for states; a busy 2-core machine may take long to reach one
  return context;
}

export function watchPage(page: Page, problems: PageProblems, label: string): void {
  page.on('pageerror', (e) => problems.errors.push(`[${label}] pageerror on ${page.url()}: ${e.message}`));
  page.on('console', (msg) => {
    // A document answered with the error status a test asked for (401 wrong password, 400 refused form,
    // 403 for a viewer): Chromium logs that as a failed resource; the tests assert those statuses themselves.
    if (msg.type() === 'error' && /^Failed to load resource/.test(msg.text()) && msg.location().url === page.url()) return;
    if (msg.type() === 'error') problems.errors.push(`[${label}] console error on ${page.url()}: ${msg.text()}`);
  });
  page.on('dialog', (d) => {
    problems.dialogs.push(`[${label}] ${d.type()}: ${d.message()}`);
    void (d.type() === 'confirm' ? d.accept() : d.dismiss()).catch(() => undefined);
  });
}

/** One PNG of the viewport (1280×800) per page, into test-artifacts/screenshots/NAME.png. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}

/** Logs in through the form at /login; returns the URL the browser ends on. */
export async function loginWithForm(page: Page, base: string, user: string, password: string, path = '/login'): Promise<string> {
  await page.goto(base + path);
  await page.fill('#username', user);
  await page.fill('#password', password);
  await submitAndWait(page, 'form button[type=submit]');
  return page.url();
}

/** Clicks a submit button and waits for the page it leads to. */
export async function submitAndWait(page: Page, selector: string): Promise<void> {
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(selector)]);
}

/** The Cookie header value of a context for the master (session cookie included). */
export async function cookieHeader(context: BrowserContext, base: string): Promise<string> {
  return (await context.cookies(base)).map((c) => `${c.name}=${c.value}`).join('; ');
}

/** The CSRF token a page of the logged-in user carries in meta[name=csrf-token]. */
export async function csrfOf(page: Page): Promise<string> {
  return (await page.getAttribute('meta[name="csrf-token"]', 'content')) ?? '';
}

/** Cookie name=value pairs from a fetch Response's Set-Cookie headers. */
function setCookies(res: Response): string[] {
  return res.headers.getSetCookie().map((c) => c.split(';', 1)[0]!).filter((c) => !/=$/.test(c));
}

/**
 * A login POST the way a script would do it: GET /login for the login CSRF cookie and field, then POST.
 * Returns the raw response (redirects are not followed).
 */
export async function loginByHttp(base: string, username: string, password: string): Promise<{ res: Response; cookie: string }> {
  const page = await fetch(`${base}/login`, { redirect: 'manual' });
  const html = await page.text();
  const token = /name="_csrf" value="([^"]*)"/.exec(html)?.[1] ?? '';
  const cookies = setCookies(page);
  const res = await fetch(`${base}/login`, {
    method: 'POST', redirect: 'manual',
    headers: { Cookie: cookies.join('; '), 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: token, username, password, next: '/' }),
  });
  await res.arrayBuffer();
  return { res, cookie: [...cookies, ...setCookies(res)].join('; ') };
}

/**
 * What makes a page not look like a product, measured in the live DOM: a table wider than the panel that
 * holds it (its right columns are cut off or painted over), a page that scrolls sideways, raw JSON in the text.
 */
export async function layoutProblems(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const out: string[] = [];
    const doc = document.documentElement;
    if (doc.scrollWidth > doc.clientWidth + 1) out.push(`the page scrolls sideways (${doc.scrollWidth}px in ${doc.clientWidth}px)`);
    for (const table of document.querySelectorAll<HTMLTableElement>('table')) {
      const box = table.closest<HTMLElement>('.panel') ?? table.parentElement!;
      const room = box.clientWidth;
      if (table.offsetWidth > room + 1) {
        const heads = [...table.querySelectorAll('th')].map((th) => th.textContent?.trim()).filter(Boolean).join(', ');
        const hidden = [...table.querySelectorAll('th')].filter((th) => th.getBoundingClientRect().right > box.getBoundingClientRect().right + 1)
          .map((th) => th.textContent?.trim() || '(unnamed)');
        out.push(`table [${heads}] is ${table.offsetWidth}px wide in a ${room}px panel; cut off: ${hidden.join(', ')}`);
      }
    }
    const text = document.querySelector('main')?.innerText ?? document.body.innerText;
    const json = /[{[]\s*"[\w$-]+"\s*:/.exec(text);
    if (json) out.push(`raw JSON in the page: …${text.slice(Math.max(0, json.index - 20), json.index + 60)}…`);
    return out;
  });
}

import type Router from '@koa/router';
import type { Context, Next } from 'koa';
import type { Master } from '../master.ts';
import { Assets } from './assets.ts';
import { createEnvironment, prefixOf, render } from './render.ts';
import type { PageContext } from './page_kit.ts';
import { mountAccountPages } from './pages/account_pages.ts';
import { mountClusterPages } from './pages/cluster_pages.ts';
import { mountProjectPages } from './pages/project_pages.ts';
import { mountSchedulePages } from './pages/schedule_pages.ts';
import { mountJobPages } from './pages/job_pages.ts';
import { mountAlertPages } from './pages/alert_pages.ts';
import { mountServicePages } from './pages/service_pages.ts';

/** Headers every page gets: no inline script or style may run, no framing, no sniffing. */
export async function securityHeaders(ctx: Context, next: Next): Promise<void> {
  await next();
  if (ctx.response.is('html')) {
    ctx.set('Content-Security-Policy', "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
    ctx.set('Cache-Control', 'no-store');
  }
}

export interface WebUi {
  pages: PageContext;
  assets: Assets;
}

/** The admin web UI: server-rendered nunjucks pages on the master's router. */
export function mountWebUi(router: Router, m: Master): WebUi {
  const env = createEnvironment();
  const assets = new Assets();
  // Templates ask for assets by name; the URL carries the content hash and the path prefix.
  env.addGlobal('asset', function (this: { ctx: { prefix?: string } }, name: string) {
    return assets.url(this.ctx.prefix ?? '', name);
  });
  // Run tables name the schedule that made a run (a deleted schedule keeps its number): the page
  // passes `scheduleNames` (id -> name, read from the database before rendering).
  env.addGlobal('scheduleName', function (this: { ctx: { scheduleNames?: Record<string, string> } }, id: number | null) {
    return id === null ? null : this.ctx.scheduleNames?.[String(id)] ?? `#${id}`;
  });
  env.addGlobal('extraNav', [{ href: '/services', label: 'Services' }, { href: '/alerts', label: 'Alerts' }]);
  const pc: PageContext = { m, env, router };
  mountAccountPages(pc);
  mountClusterPages(pc);
  mountProjectPages(pc);
  mountSchedulePages(pc);
  mountJobPages(pc);
  mountAlertPages(pc);
  mountServicePages(pc);
  return { pages: pc, assets };
}

export { render, prefixOf };

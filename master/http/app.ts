import Koa from 'koa';
import Router from '@koa/router';
import type { Master } from '../master.ts';
import { identify } from './auth.ts';
import { trustedProxy } from './proxy.ts';
import { mountApi } from './api_routes.ts';
import { mountScrapydFacade } from './scrapyd_facade.ts';
import { mountScrapydFiles } from './scrapyd_files.ts';
import { mountAlertsApi } from './alerts_api.ts';
import { mountServicesApi } from './services_api.ts';
import { mountWebUi, securityHeaders } from '../web/ui.ts';
import { closeUnreadBodies } from '../../common/http/request_params.ts';

export function createMasterApp(master: Master): Koa {
  const app = new Koa();
  app.use(closeUnreadBodies);
  // First: who the client really is (X-Forwarded-* only from a trusted proxy) and the path prefix.
  app.use(trustedProxy(master.config.trustedProxy));
  app.use(async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Referrer-Policy', 'same-origin');
    await next();
  });
  // How long the master spent on a request, for browsers' dev tools and bench/ui.bench.ts.
  app.use(async (ctx, next) => {
    const t0 = performance.now();
    await next();
    ctx.set('Server-Timing', `app;dur=${(performance.now() - t0).toFixed(2)}`);
  });
  app.use(securityHeaders);
  app.use(identify(master.users, master.sessions, master.clusterToken, master.loginLimiter));
  // Scrapyd's /jobs (for API credentials), /logs/ and /items/ for the cluster: before the web UI's routes.
  app.use(mountScrapydFiles(master));
  const router = new Router();
  mountApi(router, master);
  mountScrapydFacade(router, master);
  mountAlertsApi(router, master);
  mountServicesApi(router, master);
  const ui = mountWebUi(router, master);
  app.use(ui.assets.middleware());
  app.use(router.routes());
  app.use(router.allowedMethods());
  app.on('error', (err: Error & { code?: string }) => {
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return;
    console.error('[spiderplane-master] request failed:', err);
  });
  return app;
}

import Koa from 'koa';
import Router from '@koa/router';
import type { Master } from '../master.ts';
import { identify } from './auth.ts';
import { mountApi } from './api_routes.ts';
import { mountScrapydFacade } from './scrapyd_facade.ts';

export function createMasterApp(master: Master): Koa {
  const app = new Koa();
  app.use(async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Referrer-Policy', 'same-origin');
    await next();
  });
  app.use(identify(master.users, master.clusterToken));
  const router = new Router();
  mountApi(router, master);
  mountScrapydFacade(router, master);
  app.use(router.routes());
  app.use(router.allowedMethods());
  app.on('error', (err: Error & { code?: string }) => {
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return;
    console.error('[spiderplane-master] request failed:', err);
  });
  return app;
}

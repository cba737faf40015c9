import Koa from 'koa';
import Router from '@koa/router';
import { LEASE_HEADER } from '../cluster/master_lease.ts';
import { authMiddleware, NOT_FOUND_HTML } from '../../common/http/scrapyd_protocol.ts';
import { mountScrapydApi } from './scrapyd_api.ts';
import { closeUnreadBodies } from '../../common/http/request_params.ts';
import { slaveSecurityHeaders } from './security_headers.ts';
import { mountExtensionApi } from './extension_api.ts';
import { mountFileRoutes } from './file_routes.ts';
import { mountEnvRoutes } from './env_routes.ts';
import type { SlaveCore } from '../slave_core.ts';
import type { SystemMetrics } from '../metrics/system_metrics.ts';
import type { LogStats } from '../logs/log_stats.ts';
import type { SlaveConfig } from '../config.ts';

export function createSlaveApp(config: SlaveConfig, core: SlaveCore, metrics: SystemMetrics, stats: LogStats): Koa {
  const app = new Koa();
  app.use(closeUnreadBodies);
  app.use(slaveSecurityHeaders);
  const nodeName = () => config.nodeName;
  app.use(async (ctx, next) => {
    ctx.set('Server', 'spiderplane-slave');
    await next();
  });
  app.use(authMiddleware({ username: config.username, password: config.password, token: config.clusterToken, realm: 'Scrapyd' }));
  // A master's authenticated request renews the lease and tells its window (slave/cluster/master_lease.ts).
  app.use(async (ctx, next) => {
    const lease = ctx.get(LEASE_HEADER);
    if (lease) core.launcher.masterContact(lease);
    await next();
  });
  const router = new Router();
  mountScrapydApi(router, core, nodeName, config.maxUploadBytes, config.finishedToKeep);
  mountExtensionApi(router, core, metrics, nodeName);
  mountEnvRoutes(router, core, nodeName);
  app.use(mountFileRoutes(router, core, stats, nodeName, config.finishedToKeep));
  app.use(router.routes());
  app.use(async (ctx) => {
    if (ctx.body !== undefined && ctx.body !== null) return;
    ctx.status = 404;
    ctx.set('Content-Type', 'text/html; charset=utf-8');
    ctx.body = NOT_FOUND_HTML;
  });
  app.on('error', (err: Error & { code?: string }) => {
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return; // the client went away
    console.error('[spiderplane-slave] request failed:', err);
  });
  return app;
}

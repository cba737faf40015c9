/**
 * The dependency environments of this slave: GET /envs.json (key, kind, requirements, size,
 * versions using each, built at, last used, build log URL; and the builds in progress) and GET /envs/KEY/log (the build's
 * pip/npm output, plain text). Read-only: an environment goes away with the last version using it.
 */
import type Router from '@koa/router';
import { createReadStream } from 'node:fs';
import { scrapydEndpoint } from '../../common/http/scrapyd_protocol.ts';
import type { SlaveCore } from '../slave_core.ts';

export function mountEnvRoutes(router: Router, core: SlaveCore, nodeName: () => string): void {
  router.all('/envs.json', scrapydEndpoint(nodeName, 'GET', () => ({ envs: core.packages.envs.list(), building: core.packages.envs.inProgress() })));

  router.get('/envs/:key/log', (ctx) => {
    const path = core.packages.envs.logPath(ctx.params.key ?? '');
    if (!path) return; // the app's 404
    ctx.set('Content-Type', 'text/plain; charset=utf-8');
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.body = createReadStream(path);
  });
}

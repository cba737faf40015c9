import { buildSync } from 'esbuild';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Context, Next } from 'koa';

interface Asset { body: Buffer; type: string; hash: string }

const require = createRequire(import.meta.url);

/**
 * The browser's files, all from the repo or node_modules (no CDN): app.css, and app.js bundled
 * from client/*.ts by esbuild once at startup (with uPlot from node_modules inside it).
 */
export class Assets {
  private readonly files = new Map<string, Asset>();

  constructor() {
    const js = buildSync({
      entryPoints: [join(import.meta.dirname, 'client', 'main.ts')],
      bundle: true, write: false, format: 'iife', target: 'es2020', minify: true, sourcemap: false, legalComments: 'none',
    });
    this.add('app.js', Buffer.from(js.outputFiles[0]!.contents), 'application/javascript; charset=utf-8');
    const css = Buffer.concat([
      readFileSync(require.resolve('uplot/dist/uPlot.min.css')),
      Buffer.from('\n'),
      readFileSync(join(import.meta.dirname, 'static', 'app.css')),
    ]);
    this.add('app.css', css, 'text/css; charset=utf-8');
    this.add('favicon.svg', readFileSync(join(import.meta.dirname, 'static', 'favicon.svg')), 'image/svg+xml');
  }

  private add(name: string, body: Buffer, type: string): void {
    this.files.set(name, { body, type, hash: createHash('sha256').update(body).digest('hex').slice(0, 12) });
  }

  /** URL with a content hash, so browsers may cache it for good. */
  url(prefix: string, name: string): string {
    return `${prefix}/static/${name}?v=${this.files.get(name)?.hash ?? '0'}`;
  }

  middleware() {
    return async (ctx: Context, next: Next): Promise<void> => {
      if (!ctx.path.startsWith('/static/') || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
      const asset = this.files.get(ctx.path.slice('/static/'.length));
      if (!asset) return next();
      ctx.set('Cache-Control', ctx.query.v === asset.hash ? 'public, max-age=31536000, immutable' : 'no-cache');
      ctx.set('ETag', `"${asset.hash}"`);
      if (ctx.get('If-None-Match') === `"${asset.hash}"`) {
        ctx.status = 304;
        return;
      }
      ctx.type = asset.type;
      ctx.body = asset.body;
    };
  }
}

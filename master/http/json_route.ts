import type { Context } from 'koa';
import { HttpError } from './input.ts';
import { DispatchError } from '../runs/dispatcher.ts';
import { PackageRejected } from '../packages/package_repo.ts';
import { UserProblem } from '../auth/users.ts';
import { CronInvalid } from '../schedules/cron.ts';
import { NodeApiError, NodeUnreachable } from '../nodes/node_client.ts';
import { NodeProblem } from '../master.ts';
import { ApiError } from '../../common/http/scrapyd_protocol.ts';
import { BodyRejected } from '../../common/http/request_params.ts';

/** Maps what went wrong to an HTTP status; anything unexpected is a 500 that is also logged. */
function statusOf(e: unknown): number {
  if (e instanceof HttpError || e instanceof BodyRejected) return e.status;
  if (e instanceof PackageRejected) return e.status;
  if (e instanceof DispatchError || e instanceof PackageRejected || e instanceof UserProblem || e instanceof CronInvalid || e instanceof NodeProblem || e instanceof ApiError) return 400;
  if (e instanceof NodeApiError || e instanceof NodeUnreachable) return 502;
  return 500;
}

/** A JSON API handler: its return value is the body; a thrown error becomes {"error": message}. */
export function jsonRoute(handler: (ctx: Context) => Promise<unknown> | unknown) {
  return async (ctx: Context): Promise<void> => {
    try {
      const body = await handler(ctx);
      if (ctx.body === undefined || ctx.body === null) {
        ctx.body = body ?? { ok: true };
      }
    } catch (e) {
      const status = statusOf(e);
      if (status === 500) console.error(`[spiderplane-master] ${ctx.method} ${ctx.path}:`, e);
      ctx.status = status;
      ctx.body = { error: status === 500 ? `internal error: ${(e as Error).message}` : (e as Error).message };
    }
  };
}

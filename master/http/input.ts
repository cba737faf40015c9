import type { Context } from 'koa';
import { nameProblem } from '../../common/names.ts';
import { readJsonBody } from '../../common/http/request_params.ts';
import { checkLabelObject } from '../../common/labels.ts';
import type { Target, TargetMode } from '../runs/dispatcher.ts';
import { dict } from '../../common/dict.ts';

/** A request the API refuses: HTTP status and a message that says what to change. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export const bad = (message: string) => new HttpError(400, message);

/** The request's JSON body (one reader for every body: common/http/request_params.ts). */
export async function readJson(ctx: Context): Promise<Record<string, unknown>> {
  const body = await readJsonBody(ctx);
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw bad('the body must be a JSON object');
  return body as Record<string, unknown>;
}

/** Field readers: each names the field and the rule it broke. */
export class Fields {
  constructor(private readonly body: Record<string, unknown>) {}

  has(k: string): boolean { return this.body[k] !== undefined && this.body[k] !== null; }

  string(k: string, opts: { required?: boolean; max?: number } = {}): string | null {
    const v = this.body[k];
    if (v === undefined || v === null || v === '') {
      if (opts.required) throw bad(`'${k}' is required`);
      return null;
    }
    if (typeof v !== 'string') throw bad(`'${k}' must be a string`);
    if (v.length > (opts.max ?? 10_000)) throw bad(`'${k}' must be at most ${opts.max ?? 10_000} characters`);
    return v;
  }

  requiredString(k: string, max?: number): string { return this.string(k, { required: true, max })!; }

  /** A name that becomes a path on nodes (project, spider, version, job). */
  name(k: string, required = true): string | null {
    const v = this.string(k, { required });
    if (v === null) return null;
    const problem = nameProblem(v);
    if (problem) throw bad(`'${k}' ${problem}`);
    return v;
  }

  number(k: string, def: number, opts: { min?: number; max?: number; integer?: boolean } = {}): number {
    const v = this.body[k];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'number' || !Number.isFinite(v) || (opts.integer && !Number.isInteger(v))) throw bad(`'${k}' must be ${opts.integer ? 'an integer' : 'a number'}`);
    if (opts.min !== undefined && v < opts.min) throw bad(`'${k}' must be at least ${opts.min}`);
    if (opts.max !== undefined && v > opts.max) throw bad(`'${k}' must be at most ${opts.max}`);
    return v;
  }

  bool(k: string, def: boolean): boolean {
    const v = this.body[k];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'boolean') throw bad(`'${k}' must be true or false`);
    return v;
  }

  oneOf<T extends string>(k: string, choices: readonly T[], def: T): T {
    const v = this.body[k];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'string' || !choices.includes(v as T)) throw bad(`'${k}' must be one of ${choices.join(', ')}`);
    return v as T;
  }

  /** An object of string values (spider args, Scrapy settings). */
  stringMap(k: string): Record<string, string> {
    const v = this.body[k];
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) throw bad(`'${k}' must be an object of strings`);
    const out = dict<string>();
    for (const [key, val] of Object.entries(v as Record<string, unknown>)) {
      if (!key || key.includes('=') || key.includes('\0') || key.length > 200) throw bad(`'${k}' has an invalid name '${key.slice(0, 50)}'`);
      if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean') throw bad(`'${k}.${key}' must be a string`);
      out[key] = String(val);
    }
    return out;
  }

  /** Node labels {name: value} (see common/labels.ts). */
  labels(k: string): Record<string, string> {
    try {
      return checkLabelObject(this.body[k], k);
    } catch (e) {
      throw bad((e as Error).message);
    }
  }

  target(k: string): Target {
    const v = this.body[k];
    if (v === undefined || v === null || v === 'auto') return { mode: 'auto' };
    if (v === 'all') return { mode: 'all' };
    if (typeof v !== 'object' || Array.isArray(v)) throw bad(`'${k}' must be "auto", "all", {"mode": "node", "node": NAME} or {"mode": "nodes", "count": N}`);
    const t = new Fields(v as Record<string, unknown>);
    const mode = t.oneOf<TargetMode>('mode', ['auto', 'node', 'nodes', 'all'], 'auto');
    if (mode === 'node') return { mode, node: t.requiredString('node', 200) };
    if (mode === 'nodes') return { mode, count: t.number('count', 1, { min: 1, max: 10_000, integer: true }) };
    return { mode };
  }
}

export function intQuery(ctx: Context, k: string, def: number, max: number): number {
  const raw = ctx.query[k];
  if (raw === undefined) return def;
  const n = Number(raw);
  if (typeof raw !== 'string' || !Number.isInteger(n) || n < 0 || n > max) throw bad(`query '${k}' must be an integer from 0 to ${max}`);
  return n;
}

export function strQuery(ctx: Context, k: string): string | undefined {
  const raw = ctx.query[k];
  if (Array.isArray(raw)) throw bad(`query '${k}' must be given once`);
  return raw === '' ? undefined : raw;
}

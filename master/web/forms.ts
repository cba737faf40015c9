import type { Params } from '../../common/http/request_params.ts';
import { dict } from '../../common/dict.ts';

/** Key/value rows of a form (args or settings): fields NAME_key[] and NAME_value[] in order. */
export function kvRows(form: Params, name: string): Record<string, string> {
  const keys = form.getAll(`${name}_key`);
  const values = form.getAll(`${name}_value`);
  const out = dict<string>();
  keys.forEach((k, i) => {
    const key = k.trim();
    if (key) out[key] = values[i] ?? '';
  });
  return out;
}

/** The target chosen in a run or schedule form, in the API's shape. */
export function targetFrom(form: Params): unknown {
  switch (form.get('target_mode')) {
    case 'node': return { mode: 'node', node: form.get('target_node') ?? '' };
    case 'nodes': return { mode: 'nodes', count: Number(form.get('target_count') ?? '1') };
    case 'all': return 'all';
    default: return 'auto';
  }
}

export function optional(form: Params, name: string): string | null {
  const v = (form.get(name) ?? '').trim();
  return v === '' ? null : v;
}

/** A number field that may be left empty (null: "not set"); a non-number is passed on so validation names it. */
export function optionalNumber(form: Params, name: string): number | string | null {
  const v = (form.get(name) ?? '').trim();
  if (v === '') return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : v;
}

/** The limit and retry fields of a run or schedule form (templates/run_policy_fields.njk), in the API's shape. */
export function policyFields(form: Params): Record<'max_runtime' | 'max_memory' | 'nice' | 'retries' | 'retry_delay', number | string | null> & { keep_running: boolean } {
  return {
    max_runtime: optionalNumber(form, 'max_runtime'), max_memory: optionalNumber(form, 'max_memory'), nice: optionalNumber(form, 'nice'),
    retries: optionalNumber(form, 'retries'), retry_delay: optionalNumber(form, 'retry_delay'),
    keep_running: form.get('keep_running') === '1',
  };
}

export function numberOr(form: Params, name: string, fallback: number): number | string {
  const v = (form.get(name) ?? '').trim();
  if (v === '') return fallback;
  const n = Number(v);
  return Number.isFinite(n) ? n : v; // a non-number is passed on so validation names it
}

// Node labels (`--label region=eu`): what a slave announces and what a spider service's placement
// may require. One rule for names and values, shared by the slave's flag and the master's API.
import { dict, own } from './dict.ts';

const NAME = /^[A-Za-z0-9_.\/-]{1,63}$/;
const VALUE = /^[A-Za-z0-9_.:\/-]{0,100}$/;
const MAX_LABELS = 50;

/** Why a label is refused, or null when it is fine. */
export function labelProblem(name: string, value: string): string | null {
  if (!NAME.test(name)) return `label name '${name.slice(0, 80)}' must be 1-63 letters, digits, _ . / -`;
  if (!VALUE.test(value)) return `label '${name}' value '${value.slice(0, 80)}' must be at most 100 letters, digits, _ . : / -`;
  return null;
}

/** 'region=eu,tier=a' -> {region: 'eu', tier: 'a'}; throws Error(reason) on a malformed pair. */
export function parseLabelList(raw: string | null | undefined): Record<string, string> {
  const out = dict<string>();
  for (const item of (raw ?? '').split(',').map((x) => x.trim()).filter(Boolean)) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`label '${item.slice(0, 80)}' must look like NAME=VALUE`);
    const [name, value] = [item.slice(0, eq), item.slice(eq + 1)];
    const problem = labelProblem(name, value);
    if (problem) throw new Error(problem);
    out[name] = value;
  }
  if (Object.keys(out).length > MAX_LABELS) throw new Error(`at most ${MAX_LABELS} labels`);
  return out;
}

/** A JSON object of labels from an API body; throws Error(reason) when it is not one. */
export function checkLabelObject(v: unknown, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`'${field}' must be an object like {"region": "eu"}`);
  const out = dict<string>();
  for (const [name, value] of Object.entries(v as Record<string, unknown>)) {
    if (typeof value !== 'string') throw new Error(`'${field}.${name.slice(0, 80)}' must be a string`);
    const problem = labelProblem(name, value);
    if (problem) throw new Error(problem);
    out[name] = value;
  }
  if (Object.keys(out).length > MAX_LABELS) throw new Error(`'${field}' may hold at most ${MAX_LABELS} labels`);
  return out;
}

/** Does a node carrying `have` satisfy every required label? */
export function labelsMatch(have: Readonly<Record<string, string>>, required: Readonly<Record<string, string>>): boolean {
  return Object.entries(required).every(([k, v]) => own(have, k) === v);
}

// Reads a service from an API body (or a web form turned into one): every field checked, with a
// message naming it. An update merges the body over the current service.
import { checkLabelObject } from '../../common/labels.ts';
import { Fields, bad } from '../http/input.ts';
import type { Dispatcher } from '../runs/dispatcher.ts';
import type { ServiceInput, ServiceRow } from './service_store.ts';

const NAME = /^[A-Za-z0-9_.-]{1,100}$/;
export const MAX_REPLICAS = 10_000;

export async function parseServiceInput(dispatcher: Dispatcher, body: Record<string, unknown>, current?: ServiceRow): Promise<ServiceInput> {
  const placement = body.placement;
  if (placement !== undefined && placement !== null && (typeof placement !== 'object' || Array.isArray(placement))) throw bad(`'placement' must be an object like {"max_per_node": 2, "labels": {"region": "eu"}}`);
  // Placement fields may come inside `placement` or at the top level.
  const merged: Record<string, unknown> = { ...(placement as Record<string, unknown> | undefined ?? {}), ...body };
  const f = new Fields(merged);
  const has = (k: string) => Object.prototype.hasOwnProperty.call(merged, k);
  const name = has('name') || !current ? f.string('name', { max: 100 }) ?? (current ? current.name : f.name('spider')) : current.name;
  if (!name || !NAME.test(name) || /^\d+$/.test(name)) throw bad(`'name' must be 1-100 letters, digits, _ . - and not a number alone`);
  const project = has('project') || !current ? f.name('project')! : current.project;
  const spider = has('spider') || !current ? f.name('spider')! : current.spider;
  const rawVersion = has('version') ? f.string('version', { max: 200 }) : current ? current.version : null;
  const version = rawVersion === null || rawVersion === 'newest' ? null : rawVersion;
  if (version !== null) f.name('version');
  // The project, the version and the spider must exist now (the version may be 'newest').
  await dispatcher.resolveVersion(project, version, spider);
  const int = (k: string, def: number, min: number, max: number) => f.number(k, def, { min, max, integer: true });
  const nullableInt = (k: string, cur: number | null, min: number, max: number) => (has(k) ? (merged[k] === null ? null : int(k, 0, min, max)) : cur);
  const labels = has('labels') ? (() => { try { return checkLabelObject(merged.labels, 'labels'); } catch (e) { throw bad((e as Error).message); } })() : current ? (JSON.parse(current.labels) as Record<string, string>) : {};
  return {
    name, project, spider, version,
    args: has('args') ? f.stringMap('args') : current ? (JSON.parse(current.args) as Record<string, string>) : {},
    settings: has('settings') ? f.stringMap('settings') : current ? (JSON.parse(current.settings) as Record<string, string>) : {},
    replicas: has('replicas') ? int('replicas', 1, 0, MAX_REPLICAS) : current?.replicas ?? 1,
    max_per_node: nullableInt('max_per_node', current?.max_per_node ?? null, 1, MAX_REPLICAS),
    labels,
    max_unavailable: has('max_unavailable') ? int('max_unavailable', 1, 1, MAX_REPLICAS) : current?.max_unavailable ?? 1,
    max_runtime: nullableInt('max_runtime', current?.max_runtime ?? null, 0, 365 * 24 * 3600),
    max_memory: nullableInt('max_memory', current?.max_memory ?? null, 0, 1024 * 1024),
  };
}

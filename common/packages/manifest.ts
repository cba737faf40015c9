// The manifest of a generic (non-Scrapy) package: `spiderplane.json` at the zip root.
//
// {
//   "spiders": {
//     "prices": { "command": ["node", "prices.js"], "env": { "LANG": "C.UTF-8" }, "description": "…" },
//     "cleanup": { "command": "sh cleanup.sh" }
//   }
// }
// An array command runs directly; a string command runs with /bin/sh -c. Spider arguments are
// appended as --name=value (reaching a string command as "$@"), and both arguments and settings
// arrive as JSON in SPIDERPLANE_ARGS / SPIDERPLANE_SETTINGS.

import { nameProblem } from '../names.ts';
import { dict } from '../dict.ts';

export const MANIFEST_NAME = 'spiderplane.json';

export interface SpiderSpec {
  command: string | string[];
  env: Record<string, string>;
  description: string | null;
}

export interface Manifest {
  spiders: Record<string, SpiderSpec>;
}

export class ManifestError extends Error {}

function isStringRecord(v: unknown): v is Record<string, string> {
  return !!v && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
}

/** A manifest as stored (JSON.stringify of a parsed one), with its name-keyed parts prototype-free again. */
export function manifestFromJson(text: string): Manifest {
  const raw = JSON.parse(text) as Manifest;
  const spiders = dict<SpiderSpec>();
  for (const [name, spec] of Object.entries(raw.spiders)) spiders[name] = { ...spec, env: Object.assign(dict<string>(), spec.env) };
  return { spiders };
}

export function parseManifest(text: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ManifestError(`${MANIFEST_NAME} is not valid JSON: ${(e as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new ManifestError(`${MANIFEST_NAME} must be a JSON object`);
  const spiders = (raw as { spiders?: unknown }).spiders;
  if (!spiders || typeof spiders !== 'object' || Array.isArray(spiders) || Object.keys(spiders).length === 0) {
    throw new ManifestError(`${MANIFEST_NAME} needs a non-empty "spiders" object: {"spiders": {"name": {"command": [...]}}}`);
  }
  const out = dict<SpiderSpec>();
  for (const [name, spec] of Object.entries(spiders as Record<string, unknown>)) {
    const problem = nameProblem(name);
    if (problem) throw new ManifestError(`${MANIFEST_NAME}: spider name '${name}' ${problem}`);
    if (!spec || typeof spec !== 'object' || Array.isArray(spec)) throw new ManifestError(`${MANIFEST_NAME}: spiders.${name} must be an object with a "command"`);
    const { command, env, description } = spec as { command?: unknown; env?: unknown; description?: unknown };
    const okArray = Array.isArray(command) && command.length > 0 && command.every((c) => typeof c === 'string' && c.length > 0);
    const okString = typeof command === 'string' && command.trim().length > 0;
    if (!okArray && !okString) throw new ManifestError(`${MANIFEST_NAME}: spiders.${name}.command must be a non-empty string or array of strings`);
    if (env !== undefined && !isStringRecord(env)) throw new ManifestError(`${MANIFEST_NAME}: spiders.${name}.env must be an object of strings`);
    if (description !== undefined && typeof description !== 'string') throw new ManifestError(`${MANIFEST_NAME}: spiders.${name}.description must be a string`);
    out[name] = { command: command as string | string[], env: Object.assign(dict<string>(), env as Record<string, string> | undefined), description: (description as string | undefined) ?? null };
  }
  return { spiders: out };
}

import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';

type ParseArgsOptionConfig = NonNullable<ParseArgsConfig['options']>[string];

// One table per program describes every setting once: its flag, its environment variable, its
// config-file key, its type, default and help. Precedence: flag > environment > config file > default.

// A 'list' option repeats as a flag (--x A --x B); in the environment or a config file it is a JSON
// array of strings, or items separated by whitespace.
export type OptionType = 'string' | 'int' | 'number' | 'bool' | 'list';

export interface OptionSpec {
  flag: string;                 // e.g. 'max-proc'; the config-file key is the same with '_' ('max_proc')
  env: string;                  // e.g. 'SPIDERPLANE_MAX_PROC'
  type: OptionType;
  default: string | number | boolean | null | readonly string[];
  help: string;
  choices?: readonly string[];
  min?: number;
  max?: number;
  /** Extra config-file keys accepted for this option (e.g. Scrapyd's 'http_port'). */
  aliases?: readonly string[];
  /** A string flag that may be repeated: the values are joined with ',' (as the environment and file give them). */
  multiple?: boolean;
}

export class OptionError extends Error {}

export type OptionValues = Record<string, string | number | boolean | null | readonly string[]>;

/** Parses an INI file (scrapyd.conf style) or a JSON object into flat key -> string. */
export function readConfigFile(path: string): Record<string, string> {
  const text = readFileSync(path, 'utf8');
  if (path.endsWith('.json')) {
    const parsed: unknown = JSON.parse(text);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new OptionError(`${path}: expected a JSON object`);
    return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, String(v)]));
  }
  const out: Record<string, string> = Object.create(null) as Record<string, string>; // keys are the operator's
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';') || line.startsWith('[')) continue;
    const m = /^([A-Za-z0-9_.-]+)\s*[=:]\s*(.*)$/.exec(line);
    if (!m) throw new OptionError(`${path}: cannot read line '${line}'`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

function convert(spec: OptionSpec, raw: string, source: string): string | number | boolean | string[] {
  const where = `${source} for --${spec.flag}`;
  switch (spec.type) {
    case 'list': {
      if (!raw.trimStart().startsWith('[')) return raw.split(/\s+/).filter(Boolean);
      let parsed: unknown;
      try { parsed = JSON.parse(raw); } catch { throw new OptionError(`${where}: '${raw}' is not a JSON array`); }
      if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) throw new OptionError(`${where}: expected a JSON array of strings`);
      return parsed as string[];
    }
    case 'string':
      if (spec.choices && !spec.choices.includes(raw)) throw new OptionError(`${where}: '${raw}' is not one of ${spec.choices.join(', ')}`);
      return raw;
    case 'bool':
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off)$/i.test(raw)) return false;
      throw new OptionError(`${where}: '${raw}' is not a boolean (true/false)`);
    case 'int':
    case 'number': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n) || (spec.type === 'int' && !Number.isInteger(n))) {
        throw new OptionError(`${where}: '${raw}' is not ${spec.type === 'int' ? 'an integer' : 'a number'}`);
      }
      if (spec.min !== undefined && n < spec.min) throw new OptionError(`${where}: ${n} is below the minimum ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) throw new OptionError(`${where}: ${n} is above the maximum ${spec.max}`);
      return n;
    }
  }
}

export function parseOptions(specs: readonly OptionSpec[], argv: string[], env: NodeJS.ProcessEnv): OptionValues {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = Object.fromEntries([
    ...specs.map((s) => [s.flag, { type: s.type === 'bool' ? 'boolean' : 'string', multiple: s.type === 'list' }] as const),
    ['config', { type: 'string' }],
    ['help', { type: 'boolean' }],
  ]);
  const values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | Array<string | boolean> | undefined>;
  if (values.help) {
    throw new OptionError(usage(specs));
  }
  const configPath = (values.config as string | undefined) ?? env.SPIDERPLANE_CONFIG;
  const fileValues = configPath ? readConfigFile(configPath) : {};
  const out: OptionValues = {};
  for (const spec of specs) {
    const flagValue = values[spec.flag];
    const key = spec.flag.replace(/-/g, '_');
    const fileKey = [key, spec.flag, ...(spec.aliases ?? [])].find((k) => fileValues[k] !== undefined);
    if (flagValue !== undefined) {
      out[key] = typeof flagValue === 'boolean' ? flagValue : Array.isArray(flagValue) ? flagValue.map(String) : convert(spec, String(flagValue), 'flag');
    } else if (env[spec.env] !== undefined && env[spec.env] !== '') {
      out[key] = convert(spec, env[spec.env]!, `$${spec.env}`);
    } else if (fileKey !== undefined) {
      out[key] = convert(spec, fileValues[fileKey]!, `config file ${configPath}`);
    } else {
      out[key] = spec.default;
    }
  }
  return out;
}

export function usage(specs: readonly OptionSpec[]): string {
  const rows = specs.map((s) => `  --${s.flag.padEnd(22)} ${s.help} (env ${s.env}; default ${s.default === null || (Array.isArray(s.default) && s.default.length === 0) ? 'none' : String(s.default)})`);
  return ['Options:', ...rows, '  --config FILE           INI (scrapyd.conf style) or JSON file with the same keys (env SPIDERPLANE_CONFIG)'].join('\n');
}

/** Option values over their defaults, with a reader for optional strings (config builders share it). */
export function withDefaults(specs: readonly OptionSpec[], values: Record<string, unknown>) {
  const defaults = Object.fromEntries(specs.map((s) => [s.flag.replace(/-/g, '_'), s.default]));
  const o = { ...defaults, ...values } as OptionValues;
  const str = (k: string): string | null => (o[k] === null || o[k] === undefined ? null : String(o[k]));
  const list = (k: string): string[] => {
    const v = o[k];
    return Array.isArray(v) ? [...(v as readonly string[])] : v === null || v === undefined ? [] : [String(v)];
  };
  return { o, str, list };
}

/** Parses a program's options, or prints the problem (or --help) and exits with status 2. */
export function optionsOrExit<T>(load: () => T): T {
  try {
    return load();
  } catch (e) {
    if (e instanceof OptionError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error((e as Error).message);
      process.exit(2);
    }
    throw e;
  }
}

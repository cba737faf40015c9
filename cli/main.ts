// spiderplane CLI: deploy, run, schedule, and watch a cluster through the master's /api.
// `npx spiderplane help` lists the commands.
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildPackage } from './package_builder.ts';
import { dict } from '../common/dict.ts';
import { SERVICE_HELP, serviceCommand } from './service.ts';

const HELP = `spiderplane — talk to a spiderplane master

Usage: spiderplane COMMAND [options]

Commands:
  deploy PATH [--project P] [--version V]   upload an .egg/.zip, a folder with spiderplane.json, or a Scrapy project
  run PROJECT SPIDER [-a k=v]… [-s K=V]… [--target T] [--version V] [--priority N] [LIMITS]
                                            run a spider now; T = auto | all | node:NAME | nodes:N
  schedule PROJECT SPIDER --cron EXPR [--tz ZONE] [--name N] [-a k=v]… [-s K=V]… [--target T]
           [--overlap skip|allow] [--missed skip|run_once] [--disabled] [LIMITS]
                                            create a cron schedule
  LIMITS: --max-runtime SECONDS  --max-memory MIB  --nice 0..19  (0 = none; omitted = the slave's default)
          --retries N  --retry-delay SECONDS   re-run a failed/timeout/memory run N times, the delay doubling
  schedules                                 list schedules with their next runs
  jobs [--state S] [--project P] [--spider S] [--node N] [--limit N]
  cancel JOB                                cancel a run
  logs JOB [--tail BYTES] [--follow]        print a run's log
  nodes                                     list nodes with status and load
${SERVICE_HELP}  db migrate --from DATABASE --to DATABASE
                                            copy a stopped master's state into a new database (sqlite:PATH, postgres://…)
Connection (flags or environment):
  --url URL          SPIDERPLANE_URL        default http://127.0.0.1:5000
  --token TOKEN      SPIDERPLANE_TOKEN      an API token (POST /api/tokens)
  --user U --password P   SPIDERPLANE_USER / SPIDERPLANE_PASSWORD
  --json             print the API's JSON instead of a table
`;

class CliError extends Error {}

// `db …` works on a database directly, not through a master's API.
if (process.argv[2] === 'db') {
  const { dbCommand } = await import('./db_command.ts');
  process.exit(await dbCommand(process.argv.slice(3)));
}

const { values: opts, positionals } = (() => {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        url: { type: 'string' }, token: { type: 'string' }, user: { type: 'string' }, password: { type: 'string' }, json: { type: 'boolean' },
        project: { type: 'string' }, version: { type: 'string' }, arg: { type: 'string', short: 'a', multiple: true },
        setting: { type: 'string', short: 's', multiple: true }, target: { type: 'string' }, priority: { type: 'string' },
        cron: { type: 'string' }, tz: { type: 'string' }, name: { type: 'string' }, overlap: { type: 'string' }, missed: { type: 'string' },
        disabled: { type: 'boolean' }, state: { type: 'string' }, spider: { type: 'string' }, node: { type: 'string' }, limit: { type: 'string' },
        tail: { type: 'string' }, follow: { type: 'boolean', short: 'f' }, python: { type: 'string' }, help: { type: 'boolean', short: 'h' },
        'max-runtime': { type: 'string' }, 'max-memory': { type: 'string' }, nice: { type: 'string' }, retries: { type: 'string' }, 'retry-delay': { type: 'string' },
        replicas: { type: 'string' }, 'max-per-node': { type: 'string' }, label: { type: 'string', multiple: true }, 'max-unavailable': { type: 'string' },
      },
    });
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${HELP}`);
    process.exit(2);
  }
})();

const base = (opts.url ?? process.env.SPIDERPLANE_URL ?? 'http://127.0.0.1:5000').replace(/\/+$/, '');

function authHeader(): Record<string, string> {
  const token = opts.token ?? process.env.SPIDERPLANE_TOKEN;
  if (token) return { Authorization: `Bearer ${token}` };
  const user = opts.user ?? process.env.SPIDERPLANE_USER;
  const password = opts.password ?? process.env.SPIDERPLANE_PASSWORD;
  if (user && password) return { Authorization: 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64') };
  throw new CliError('give credentials: --token (or SPIDERPLANE_TOKEN), or --user and --password (or SPIDERPLANE_USER / SPIDERPLANE_PASSWORD)');
}

async function call<T = Record<string, unknown>>(method: string, path: string, body?: unknown, form?: FormData): Promise<T> {
  let res: Response;
  const headers = { ...authHeader(), ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) };
  try {
    res = await fetch(base + path, {
      method,
      headers,
      body: form ?? (body !== undefined ? JSON.stringify(body) : undefined),
    });
  } catch (e) {
    throw new CliError(`cannot reach the master at ${base}: ${(e as Error & { cause?: { code?: string } }).cause?.code ?? (e as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) {
    let message = text;
    try { message = (JSON.parse(text) as { error?: string }).error ?? text; } catch { /* not JSON */ }
    throw new CliError(`${method} ${path}: HTTP ${res.status}: ${message}`);
  }
  try { return JSON.parse(text) as T; } catch { return text as unknown as T; }
}

function pairs(list: string[] | undefined, what: string): Record<string, string> {
  const out = dict<string>();
  for (const item of list ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new CliError(`${what} '${item}' must look like NAME=VALUE`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

function target(raw: string | undefined): unknown {
  if (!raw || raw === 'auto') return 'auto';
  if (raw === 'all') return 'all';
  const [mode, value] = raw.split(':', 2);
  if (mode === 'node' && value) return { mode: 'node', node: value };
  if (mode === 'nodes' && value && /^\d+$/.test(value)) return { mode: 'nodes', count: Number(value) };
  throw new CliError(`--target '${raw}' must be auto, all, node:NAME or nodes:N`);
}

function table(rows: Array<Record<string, unknown>>, columns: string[]): string {
  if (!rows.length) return '(none)';
  const cell = (v: unknown) => (v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n');
}

const when = (ms: unknown) => (typeof ms === 'number' ? new Date(ms).toLocaleString() : '-');

function print(data: unknown, render: () => string): void {
  console.log(opts.json ? JSON.stringify(data, null, 2) : render());
}

function need(n: number, usage: string): string[] {
  if (positionals.length - 1 < n) throw new CliError(`usage: spiderplane ${usage}`);
  return positionals.slice(1);
}

async function main(): Promise<void> {
  const command = positionals[0];
  if (!command || command === 'help' || opts.help) {
    console.log(HELP);
    return;
  }
  switch (command) {
    case 'deploy': {
      const [path] = need(1, 'deploy PATH [--project P] [--version V]');
      const built = await buildPackage(path!, opts.python ?? '/usr/bin/python3');
      const project = opts.project ?? built.project;
      if (!project) throw new CliError('give --project for a package file');
      const version = opts.version ?? String(Math.floor(Date.now() / 1000));
      const form = new FormData();
      form.set('version', version);
      form.set('egg', new Blob([new Uint8Array(built.data)]), `${project}-${version}.zip`);
      const res = await call<{ deployment: { targets: Array<{ node: string; state: string; message: string | null; spiders: number | null }> } }>(
        'POST', `/api/projects/${encodeURIComponent(project)}/versions?wait=1`, undefined, form);
      print(res, () => `deployed ${project} ${version} (${built.kind}, ${built.data.length} bytes)\n` + table(res.deployment.targets, ['node', 'state', 'spiders', 'message']));
      if (res.deployment.targets.some((t) => t.state !== 'ok')) process.exitCode = 1;
      return;
    }
    case 'run': {
      const [project, spider] = need(2, 'run PROJECT SPIDER [-a k=v] [-s K=V] [--target T]');
      const priority = opts.priority === undefined ? 0 : Number(opts.priority);
      if (!Number.isFinite(priority)) throw new CliError('--priority must be a number');
      const res = await call<{ runs: Array<Record<string, unknown>> }>('POST', '/api/runs', {
        project, spider, version: opts.version ?? null, args: pairs(opts.arg, '-a'), settings: pairs(opts.setting, '-s'), priority, target: target(opts.target),
        ...runPolicy(),
      });
      print(res, () => table(res.runs, ['job', 'node', 'state', 'note']));
      return;
    }
    case 'schedule': {
      const [project, spider] = need(2, 'schedule PROJECT SPIDER --cron EXPR');
      if (!opts.cron) throw new CliError('--cron is required, e.g. --cron "0 3 * * *"');
      const res = await call<{ schedule: Record<string, unknown> & { next_runs: string[] } }>('POST', '/api/schedules', {
        project, spider, cron: opts.cron, timezone: opts.tz ?? null, name: opts.name ?? null, version: opts.version ?? null,
        args: pairs(opts.arg, '-a'), settings: pairs(opts.setting, '-s'), target: target(opts.target), enabled: !opts.disabled,
        overlap: opts.overlap ?? 'skip', missed: opts.missed ?? 'skip', ...runPolicy(),
      });
      print(res, () => `schedule ${res.schedule.id} '${res.schedule.name}' created; next runs:\n  ${res.schedule.next_runs.map((d) => new Date(d).toLocaleString()).join('\n  ')}`);
      return;
    }
    case 'schedules': {
      const res = await call<{ schedules: Array<Record<string, unknown> & { next_runs: string[] }> }>('GET', '/api/schedules');
      print(res, () => table(res.schedules.map((s) => ({ ...s, next: s.next_runs[0] ? new Date(s.next_runs[0]).toLocaleString() : '-' })), ['id', 'name', 'cron', 'timezone', 'project', 'spider', 'enabled', 'next']));
      return;
    }
    case 'jobs': {
      const q = new URLSearchParams();
      for (const k of ['state', 'project', 'spider', 'node', 'limit'] as const) if (opts[k]) q.set(k, opts[k]!);
      const res = await call<{ runs: Array<Record<string, unknown>>; total: number }>('GET', `/api/runs?${q}`);
      print(res, () => table(res.runs.map((r) => ({ ...r, created: when(r.created_at) })), ['job', 'project', 'spider', 'node', 'state', 'outcome', 'items_count', 'created']) + `\n${res.runs.length} of ${res.total}`);
      return;
    }
    case 'cancel': {
      const [job] = need(1, 'cancel JOB');
      const res = await call<{ prevstate: string | null }>('POST', `/api/runs/${encodeURIComponent(job!)}/cancel`);
      print(res, () => `cancelled ${job} (was ${res.prevstate ?? 'not active'})`);
      return;
    }
    case 'logs': {
      const [job] = need(1, 'logs JOB [--tail BYTES] [--follow]');
      const tail = opts.tail === undefined ? 0 : Number(opts.tail);
      if (!Number.isInteger(tail) || tail < 0) throw new CliError('--tail must be a number of bytes');
      let offset = -1;
      for (;;) {
        const text = String(await call<string>('GET', `/api/runs/${encodeURIComponent(job!)}/log`));
        process.stdout.write(offset < 0 ? text.slice(tail ? Math.max(0, text.length - tail) : 0) : text.slice(offset));
        offset = text.length;
        if (!opts.follow) return;
        const run = await call<{ run: { state: string } }>('GET', `/api/runs/${encodeURIComponent(job!)}`);
        if (!['dispatching', 'pending', 'running'].includes(run.run.state)) return;
        await sleep(1000);
      }
    }
    case 'nodes': {
      const res = await call<{ nodes: Array<Record<string, unknown>> }>('GET', '/api/nodes');
      print(res, () => table(res.nodes.map((n) => ({ ...n, load: `${n.running}+${n.pending}/${n.max_proc ?? '?'}`, heartbeat: when(n.last_heartbeat_at) })), ['name', 'url', 'status', 'draining', 'load', 'heartbeat', 'last_error']));
      return;
    }
    case 'service':
      return serviceCommand({ call, print, table, pairs, fail: (message) => { throw new CliError(message); } }, positionals.slice(1), opts);
    default:
      throw new CliError(`unknown command '${command}'\n\n${HELP}`);
  }
}

/** --max-runtime, --max-memory, --nice, --retries, --retry-delay as API fields (only those given; the master checks ranges). */
function runPolicy(): Record<string, number> {
  const out: Record<string, number> = {};
  const flags = [['max-runtime', 'max_runtime'], ['max-memory', 'max_memory'], ['nice', 'nice'], ['retries', 'retries'], ['retry-delay', 'retry_delay']] as const;
  for (const [flag, field] of flags) {
    const raw = opts[flag];
    if (raw === undefined) continue;
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n) || n < 0) throw new CliError(`--${flag} must be a number, 0 or more`);
    out[field] = n;
  }
  return out;
}

main().catch((e) => {
  console.error(e instanceof CliError ? `spiderplane: ${e.message}` : e);
  process.exit(1);
});

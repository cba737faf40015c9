// `spiderplane service create|scale|update|rm|ls`: spider services (N replicas kept running) through
// the master's /api/services. The connection, tables and errors are main.ts's, passed in.

export interface ServiceOpts {
  version?: string; arg?: string[]; setting?: string[]; replicas?: string; 'max-per-node'?: string; label?: string[];
  'max-unavailable'?: string; 'max-runtime'?: string; 'max-memory'?: string; name?: string;
}

export interface CliKit {
  call: <T = Record<string, unknown>>(method: string, path: string, body?: unknown) => Promise<T>;
  print: (data: unknown, render: () => string) => void;
  table: (rows: Array<Record<string, unknown>>, columns: string[]) => string;
  pairs: (list: string[] | undefined, what: string) => Record<string, string>;
  fail: (message: string) => never;
}

export const SERVICE_HELP = `  service ls                                list services: desired vs running, status
  service create NAME PROJECT SPIDER [--replicas N] [--version V|newest] [-a k=v]… [-s K=V]…
           [--max-per-node K] [--label k=v]… [--max-unavailable N] [--max-runtime S] [--max-memory MB]
                                            keep N replicas of a spider running (spread evenly)
  service scale NAME N                      (or NAME=N) change the replica count
  service update NAME [--version V|newest] [--replicas N] [-a k=v]… [...]   change a service (a new version rolls)
  service rm NAME                           remove a service and stop its replicas
`;

interface ServiceView {
  id: number; name: string; project: string; spider: string; version: string; replicas: number; running: number; pending: number; stopping: number;
  status: string; status_detail: string | null; nodes: Array<{ node: string; running: number; pending: number; stopping: number }>;
}

function num(kit: CliKit, raw: string | undefined, flag: string): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) kit.fail(`${flag} must be a whole number`);
  return Number(raw);
}

/** The fields given on the command line, in the API's shape (absent flags are left out: an update keeps them). */
function fields(kit: CliKit, o: ServiceOpts): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (o.version !== undefined) body.version = o.version;
  if (o.arg) body.args = kit.pairs(o.arg, '-a');
  if (o.setting) body.settings = kit.pairs(o.setting, '-s');
  if (o.label) body.labels = kit.pairs(o.label, '--label');
  const ints: Array<[keyof ServiceOpts, string]> = [['replicas', 'replicas'], ['max-per-node', 'max_per_node'], ['max-unavailable', 'max_unavailable'], ['max-runtime', 'max_runtime'], ['max-memory', 'max_memory']];
  for (const [flag, key] of ints) {
    const v = num(kit, o[flag] as string | undefined, `--${flag}`);
    if (v !== undefined) body[key] = v;
  }
  return body;
}

const summary = (s: ServiceView) => `${s.name}: ${s.running}/${s.replicas} running — ${s.status}${s.status_detail ? ` (${s.status_detail})` : ''}`;

export async function serviceCommand(kit: CliKit, args: string[], o: ServiceOpts): Promise<void> {
  const [sub, ...rest] = args;
  const ref = (name: string | undefined) => encodeURIComponent(name ?? kit.fail(`usage: spiderplane service ${sub} NAME`));
  switch (sub) {
    case 'ls':
    case undefined: {
      const res = await kit.call<{ services: ServiceView[] }>('GET', '/api/services');
      kit.print(res, () => kit.table(res.services.map((s) => ({
        ...s, spider: `${s.project}/${s.spider}`, replicas: `${s.running}/${s.replicas}`,
        nodes: s.nodes.map((n) => `${n.node}:${n.running}${n.pending ? `+${n.pending}` : ''}`).join(' ') || '-',
      })), ['id', 'name', 'spider', 'version', 'replicas', 'status', 'nodes']));
      return;
    }
    case 'create': {
      const [name, project, spider] = rest;
      if (!name || !project || !spider) kit.fail('usage: spiderplane service create NAME PROJECT SPIDER [--replicas N] …');
      const res = await kit.call<{ service: ServiceView }>('POST', '/api/services', { name, project, spider, ...fields(kit, o) });
      kit.print(res, () => `created ${summary(res.service)}`);
      return;
    }
    case 'scale': {
      let [name, count] = rest;
      if (name && count === undefined && name.includes('=')) [name, count] = [name.slice(0, name.lastIndexOf('=')), name.slice(name.lastIndexOf('=') + 1)];
      if (!name || count === undefined) kit.fail('usage: spiderplane service scale NAME N');
      const replicas = num(kit, count, 'the replica count')!;
      const res = await kit.call<{ service: ServiceView }>('POST', `/api/services/${ref(name)}/scale`, { replicas });
      kit.print(res, () => `scaled ${summary(res.service)}`);
      return;
    }
    case 'update': {
      const body = fields(kit, o);
      if (o.name !== undefined) body.name = o.name;
      if (!Object.keys(body).length) kit.fail('nothing to update: give --version, --replicas, -a, -s, --label, --max-per-node, --max-unavailable, --max-runtime or --max-memory');
      const res = await kit.call<{ service: ServiceView }>('PUT', `/api/services/${ref(rest[0])}`, body);
      kit.print(res, () => `updated ${summary(res.service)}`);
      return;
    }
    case 'rm': {
      const res = await kit.call<{ stopping: number }>('DELETE', `/api/services/${ref(rest[0])}`);
      kit.print(res, () => `removed ${rest[0]}; ${res.stopping} replica(s) stopping`);
      return;
    }
    default:
      kit.fail(`unknown service command '${sub}': ls, create, scale, update or rm`);
  }
}

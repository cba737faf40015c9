// No container engine runs here, so daemon/'s container files are checked against the code by
// reading them: every --flag and SPIDERPLANE_* variable the Dockerfile, the compose file and the
// Kubernetes manifests give a program is one of its options (MASTER_OPTIONS / SLAVE_OPTIONS, plus
// the --trusted-proxy option of master/http/proxy.ts until config.ts carries it) and its value
// parses (the programs' own parseOptions), ports agree with the defaults and with each other, the
// slaves point at the master's service name and port, $(VAR) references and Secret keys exist.
// The env files of daemon/etc/ and the supervisor/systemd settings get the same check.
// Run: cd /work/main && npx tsx --test test/daemon_containers.test.ts
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MASTER_OPTIONS } from '../master/config.ts';
import { exposureProblem, SLAVE_OPTIONS, slaveConfig } from '../slave/config.ts';
import { parseOptions, type OptionSpec } from '../common/options.ts';
import { ipMatcher, parseTrustedList, TRUSTED_PROXY_OPTION } from '../master/http/proxy.ts';
import { ROOT } from './helpers/slave_process.ts';
import { DAEMON_DIR, readEnvFile } from './helpers/daemon_tools.ts';
import { parseYamlDocuments, type Yaml } from './helpers/mini_yaml.ts';

type Role = 'master' | 'slave';
const SPECS: Record<Role, readonly OptionSpec[]> = {
  master: MASTER_OPTIONS.some((o) => o.flag === TRUSTED_PROXY_OPTION.flag) ? MASTER_OPTIONS : [...MASTER_OPTIONS, TRUSTED_PROXY_OPTION],
  slave: SLAVE_OPTIONS,
};
const defaultOf = (role: Role, flag: string) => SPECS[role].find((o) => o.flag === flag)!.default;
const MASTER_PORT = Number(defaultOf('master', 'port'));
const SLAVE_PORT = Number(defaultOf('slave', 'port'));
/** Variables the CLI reads (process.env.SPIDERPLANE_*), for the entrypoint's `cli` role. */
const CLI_ENV = new Set([...readFileSync(join(ROOT, 'cli', 'main.ts'), 'utf8').matchAll(/process\.env\.(SPIDERPLANE_[A-Z_]+)/g)].map((m) => m[1]!));
const KNOWN_ENV = new Set([...SPECS.master, ...SPECS.slave].map((o) => o.env).concat([...CLI_ENV, 'SPIDERPLANE_CONFIG']));

const read = (...p: string[]) => readFileSync(join(DAEMON_DIR, ...p), 'utf8');
const obj = (v: Yaml | undefined): Record<string, Yaml> => (v && typeof v === 'object' && !Array.isArray(v) ? v : {});
const list = (v: Yaml | undefined): Yaml[] => (Array.isArray(v) ? v : []);
const str = (v: Yaml | undefined): string => (typeof v === 'string' ? v : '');

/**
 * Parses a program's arguments and environment with the program's own option table: an unknown
 * flag, an unknown SPIDERPLANE_* variable, or a value of the wrong type/choice fails. Returns the
 * resolved values (flag > env > default).
 */
function checkProgram(where: string, role: Role, args: string[], env: Record<string, string>): Record<string, unknown> {
  for (const name of Object.keys(env).filter((k) => k.startsWith('SPIDERPLANE_'))) {
    assert.ok(SPECS[role].some((o) => o.env === name), `${where}: ${name} is not a ${role} option (${SPECS[role].map((o) => o.env).join(', ')})`);
  }
  for (const a of args.filter((x) => x.startsWith('--'))) {
    assert.ok(SPECS[role].some((o) => `--${o.flag}` === a.split('=')[0]), `${where}: ${a} is not a ${role} flag`);
  }
  let values: Record<string, unknown>;
  try {
    values = parseOptions(SPECS[role], args, env);
  } catch (e) {
    throw new Error(`${where}: ${role} refuses ${JSON.stringify(args)} ${JSON.stringify(env)}: ${(e as Error).message}`);
  }
  if (typeof values.trusted_proxy === 'string') assert.doesNotThrow(() => ipMatcher(parseTrustedList(values.trusted_proxy as string)), `${where}: trusted proxy list`);
  // A slave listening beyond loopback must be given a cluster token or credentials (the image's own
  // ENV defaults are not a full configuration: whoever runs it passes one).
  if (role === 'slave' && where !== 'Dockerfile ENV') assert.equal(exposureProblem(slaveConfig(values)), null, `${where}: the slave would refuse to start`);
  return values;
}

/** Replaces ${VAR...} (compose) and $(VAR) (Kubernetes) by a plausible value for parsing. */
function substitute(v: string, known: Record<string, string> = {}): string {
  return v.replace(/\$\{([A-Z_]+)[^}]*\}/g, (_m, n: string) => known[n] ?? 'x').replace(/\$\(([A-Za-z_]+)\)/g, (_m, n: string) => known[n] ?? 'x');
}

describe('Dockerfile and entrypoint', () => {
  const dockerfile = read('docker', 'Dockerfile');
  const entrypoint = read('docker', 'entrypoint.sh');

  test('Debian bookworm, Node 20, Debian Scrapy, npm ci, one image for both roles', () => {
    assert.match(dockerfile, /^FROM node:20-bookworm-slim\b/m);
    assert.match(dockerfile, /apt-get install[^\n]*python3-scrapy/);
    assert.match(dockerfile, /npm ci\b/);
    assert.match(dockerfile, /^ENTRYPOINT \[.*spiderplane-entrypoint"\]$/m);
    assert.match(dockerfile, /^COPY daemon\/docker\/entrypoint\.sh /m);
    assert.ok(existsSync(join(DAEMON_DIR, 'docker', 'entrypoint.sh')));
    // the engines field of package.json accepts the image's Node
    const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    assert.match(engines, /^>=20(\.|$)/);
    // the roles run this repository's programs
    assert.match(entrypoint, /master\)\s+exec node --import tsx run_master\.ts "\$@"/);
    assert.match(entrypoint, /slave\)\s+exec node --import tsx run_slave\.ts "\$@"/);
    for (const f of ['run_master.ts', 'run_slave.ts', 'cli/main.ts']) assert.ok(existsSync(join(ROOT, f)), f);
  });

  test('ENV names and values are the programs\' options, EXPOSE the default ports', () => {
    const env: Record<string, string> = {};
    const envBlock = /^ENV ((?:.*\\\n)*.*)$/m.exec(dockerfile)![1]!;
    for (const m of envBlock.matchAll(/([A-Z_][A-Z0-9_]*)=(\S+)/g)) env[m[1]!] = m[2]!;
    const names = Object.keys(env).filter((k) => k.startsWith('SPIDERPLANE_'));
    assert.ok(names.length >= 6, names.join());
    const forRole = (role: Role) => Object.fromEntries(Object.entries(env).filter(([k]) => SPECS[role].some((o) => o.env === k)));
    for (const n of names) assert.ok(KNOWN_ENV.has(n), `Dockerfile: ${n} is no option`);
    const master = checkProgram('Dockerfile ENV', 'master', [], forRole('master'));
    const slave = checkProgram('Dockerfile ENV', 'slave', [], forRole('slave'));
    assert.equal(master.port, MASTER_PORT);
    assert.equal(slave.port, SLAVE_PORT);
    assert.equal(master.bind, '0.0.0.0');
    assert.equal(slave.bind, '0.0.0.0');
    const exposed = /^EXPOSE (.*)$/m.exec(dockerfile)![1]!.trim().split(/\s+/).map(Number).sort();
    assert.deepEqual(exposed, [MASTER_PORT, SLAVE_PORT].sort());
    // the example commands in the comments use real flags too
    for (const m of dockerfile.matchAll(/spiderplane (master|slave)((?:[^\n]*\\\n#)*[^\n]*)/g)) {
      const args = m[2]!.replace(/\\\n#/g, ' ').trim().split(/\s+/).filter(Boolean);
      checkProgram(`Dockerfile comment '${m[0].slice(0, 60)}'`, m[1] as Role, args, {});
    }
    // the entrypoint's health check probes the same ports
    for (const n of entrypoint.matchAll(/\$\{(SPIDERPLANE_[A-Z_]+):-(\d+)\}/g)) {
      assert.ok(KNOWN_ENV.has(n[1]!), n[1]);
      assert.equal(Number(n[2]), n[1] === 'SPIDERPLANE_MASTER_PORT' ? MASTER_PORT : SLAVE_PORT, n[0]);
    }
    for (const n of entrypoint.matchAll(/SPIDERPLANE_[A-Z_]+/g)) assert.ok(KNOWN_ENV.has(n[0]), `entrypoint.sh: ${n[0]}`);
  });
});

describe('compose file: one master and two slaves', () => {
  const compose = obj(parseYamlDocuments(read('docker', 'compose.yaml'))[0]);
  const services = obj(compose.services);

  test('every service\'s command and environment parse as the program\'s options; ports and URLs agree', () => {
    const roles = Object.entries(services).map(([name, s]) => [name, str(list(obj(s).command)[0])] as const);
    assert.deepEqual(roles.filter(([, r]) => r === 'master').length, 1, JSON.stringify(roles));
    assert.deepEqual(roles.filter(([, r]) => r === 'slave').length, 2, JSON.stringify(roles));
    const [masterName] = roles.find(([, r]) => r === 'master')!;
    let masterPort = 0;
    for (const [name, role] of roles) {
      const s = obj(services[name]);
      const args = list(s.command).slice(1).map((a) => substitute(str(a)));
      const env = Object.fromEntries(Object.entries(obj(s.environment)).map(([k, v]) => [k, substitute(str(v))]));
      const v = checkProgram(`compose service ${name}`, role as Role, args, env);
      const defaultPort = role === 'master' ? MASTER_PORT : SLAVE_PORT;
      assert.equal(v.port, defaultPort, `${name}: port`);
      if (role === 'master') {
        masterPort = v.port as number;
        const published = list(s.ports).map((p) => str(p).split(':').at(-1));
        assert.deepEqual(published, [String(v.port)], `${name}: published container port`);
      } else {
        assert.ok(v.cluster_token, `${name}: cluster token`);
        const master = new URL(String(v.master));
        assert.equal(master.hostname, masterName, `${name}: --master names the master service`);
        assert.equal(Number(master.port), masterPort || MASTER_PORT);
        const adv = new URL(String(v.advertise_url));
        assert.deepEqual([adv.hostname, Number(adv.port)], [name, v.port], `${name}: --advertise-url is this service on its port`);
        assert.equal(v.node_name, name);
        assert.deepEqual(list(s.depends_on), [masterName]);
      }
    }
    // the master and its slaves share the token
    const tokens = Object.values(services).map((s) => str(obj(obj(s).environment).SPIDERPLANE_CLUSTER_TOKEN));
    assert.equal(new Set(tokens).size, 1, tokens.join());
    assert.equal(str(obj(compose['x-image']).build && obj(obj(compose['x-image']).build).dockerfile), 'daemon/docker/Dockerfile');
  });
});

describe('Kubernetes manifests', () => {
  const docs = ['namespace.yaml', 'secret.yaml', 'master.yaml', 'slave.yaml'].flatMap((f) => parseYamlDocuments(read('k8s', f)).map((d) => ({ file: f, d: obj(d) })));
  const byKind = (kind: string) => docs.filter((x) => x.d.kind === kind);
  const component = (d: Record<string, Yaml>) => str(obj(obj(obj(d.metadata).labels))['app.kubernetes.io/component']);

  test('master Deployment with a PVC and a Service; slave DaemonSet registering by the Service name', () => {
    const secret = byKind('Secret')[0]!.d;
    const secretKeys = Object.keys(obj(secret.stringData));
    const service = byKind('Service').find((x) => component(x.d) === 'master')!.d;
    const servicePort = obj(list(obj(service.spec).ports)[0]);
    const serviceName = str(obj(service.metadata).name);
    const pvc = byKind('PersistentVolumeClaim').find((x) => component(x.d) === 'master')!.d;
    const workloads = [...byKind('Deployment'), ...byKind('DaemonSet')];
    assert.deepEqual(workloads.map((w) => `${String(w.d.kind)}/${component(w.d)}`).sort(), ['DaemonSet/slave', 'Deployment/master']);

    for (const { d } of workloads) {
      const role = component(d) as Role;
      const podSpec = obj(obj(obj(d.spec).template).spec);
      // selector matches the pod labels (and the Service's selector for the master)
      assert.deepEqual(obj(obj(d.spec).selector).matchLabels, obj(obj(obj(d.spec).template).metadata).labels);
      const c = obj(list(podSpec.containers)[0]);
      const envList = list(c.env).map(obj);
      // values for $(VAR): literal values, and placeholders for the downward API and Secrets
      const known: Record<string, string> = {};
      for (const e of envList) {
        const name = str(e.name);
        const from = obj(e.valueFrom);
        if (e.value !== undefined) known[name] = str(e.value);
        else if (obj(from.fieldRef).fieldPath === 'status.podIP') known[name] = '10.1.2.3';
        else if (from.fieldRef) known[name] = 'k8s-node-1';
        else if (from.secretKeyRef) {
          const ref = obj(from.secretKeyRef);
          assert.equal(ref.name, obj(secret.metadata).name, `${role}: ${name} from the Secret`);
          assert.ok(secretKeys.includes(str(ref.key)), `${role}: Secret key ${str(ref.key)} exists`);
          known[name] = 'secret';
        } else assert.fail(`${role}: env ${name} has no value`);
      }
      const argv = list(c.args).map(str);
      assert.equal(argv[0], role, 'the image entrypoint picks the role from the first argument');
      for (const a of argv) for (const m of a.matchAll(/\$\(([A-Za-z_]+)\)/g)) assert.ok(m[1]! in known, `${role}: $(${m[1]}) is defined in env`);
      const env = Object.fromEntries(Object.entries(known).filter(([k]) => k.startsWith('SPIDERPLANE_')));
      const v = checkProgram(`k8s ${role}`, role, argv.slice(1).map((a) => substitute(a, known)), env);
      const port = obj(list(c.ports)[0]);
      assert.equal(Number(port.containerPort), v.port, `${role}: containerPort is --port`);
      assert.equal(v.port, role === 'master' ? MASTER_PORT : SLAVE_PORT);
      assert.equal(v.bind, '0.0.0.0', `${role}: listens on the pod IP`);
      if (role === 'master') {
        assert.equal(obj(d.spec).replicas, '1');
        assert.equal(obj(obj(d.spec).strategy).type, 'Recreate', 'never two masters on one SQLite database');
        const vol = list(podSpec.volumes).map(obj).find((x) => x.persistentVolumeClaim);
        assert.equal(obj(vol?.persistentVolumeClaim).claimName, obj(pvc.metadata).name);
        assert.deepEqual(obj(obj(service.spec).selector), obj(obj(obj(d.spec).template).metadata).labels);
        assert.ok(servicePort.targetPort === port.name || Number(servicePort.targetPort) === v.port, 'Service targets the container port');
        assert.equal(Number(servicePort.port), v.port);
      } else {
        const master = new URL(String(v.master));
        assert.equal(master.hostname, serviceName, '--master is the master Service name');
        assert.equal(Number(master.port), Number(servicePort.port), '--master uses the Service port');
        assert.equal(v.cluster_token, 'secret', '--cluster-token from the Secret');
        const adv = new URL(String(v.advertise_url));
        assert.deepEqual([adv.hostname, Number(adv.port)], ['10.1.2.3', v.port], '--advertise-url is the pod IP (downward API) and port');
        const grace = Number(podSpec.terminationGracePeriodSeconds);
        assert.ok(grace > 2 * Number(v.cancel_grace), 'room for the INT, TERM, KILL escalation');
      }
    }
    for (const { file, d } of docs) {
      if (d.kind !== 'Namespace') assert.equal(obj(d.metadata).namespace, 'spiderplane', `${file}: ${String(d.kind)}`);
    }
    const kust = obj(parseYamlDocuments(read('k8s', 'kustomization.yaml'))[0]);
    assert.deepEqual(list(kust.resources).map(str).sort(), ['master.yaml', 'namespace.yaml', 'secret.yaml', 'slave.yaml']);
  });
});

describe('env files, supervisor and systemd settings', () => {
  test('daemon/etc/*.env hold only the programs\' options, with valid values', () => {
    for (const role of ['master', 'slave'] as const) {
      const env = readEnvFile(read('etc', `${role}.env`));
      const v = checkProgram(`daemon/etc/${role}.env`, role, [], env);
      assert.equal(v.port, role === 'master' ? MASTER_PORT : SLAVE_PORT);
    }
    const slave = readEnvFile(read('etc', 'slave.env'));
    const master = readEnvFile(read('etc', 'master.env'));
    assert.equal(slave.SPIDERPLANE_CLUSTER_TOKEN, master.SPIDERPLANE_CLUSTER_TOKEN, 'the same token placeholder on both sides');
    assert.equal(new URL(slave.SPIDERPLANE_MASTER!).port, master.SPIDERPLANE_MASTER_PORT);
  });

  test('every SPIDERPLANE_* name in daemon/ and docs/deploy.md is an option, a CLI variable or a supervisor path', () => {
    const SUPERVISOR_PATHS = new Set([...read('supervisor', 'spiderplane.conf').matchAll(/%\(ENV_(SPIDERPLANE_[A-Z_]+)\)s/g)].map((m) => m[1]!));
    assert.deepEqual([...SUPERVISOR_PATHS].sort(), ['SPIDERPLANE_ETC', 'SPIDERPLANE_LOG_DIR', 'SPIDERPLANE_NODE_BIN', 'SPIDERPLANE_ROOT', 'SPIDERPLANE_DAEMON_USER'].sort());
    // spiderplane-env.conf defines every path the program file uses
    const defined = new Set([...read('supervisor', 'spiderplane-env.conf').matchAll(/(SPIDERPLANE_[A-Z_]+)="/g)].map((m) => m[1]!));
    assert.deepEqual([...defined].sort(), [...SUPERVISOR_PATHS].sort());
    const files = [['nginx', 'spiderplane.conf'], ['nginx', 'spiderplane-prefix.conf'], ['supervisor', 'spiderplane.conf'], ['supervisor', 'spiderplane-env.conf'],
      ['systemd', 'spiderplane-master.service'], ['systemd', 'spiderplane-slave.service'], ['docker', 'Dockerfile'], ['docker', 'compose.yaml'], ['docker', 'entrypoint.sh'],
      ['k8s', 'master.yaml'], ['k8s', 'slave.yaml'], ['etc', 'master.env'], ['etc', 'slave.env']].map((p) => [p.join('/'), read(...p)] as const);
    const guide = join(ROOT, 'docs', 'deploy.md');
    if (existsSync(guide)) files.push(['docs/deploy.md', readFileSync(guide, 'utf8')]);
    for (const [name, text] of files) {
      for (const m of text.matchAll(/SPIDERPLANE_[A-Z0-9_]*[A-Z0-9]/g)) {
        assert.ok(KNOWN_ENV.has(m[0]) || SUPERVISOR_PATHS.has(m[0]), `${name}: ${m[0]} is unknown`);
      }
    }
  });

  test('every --flag given to run_master.ts / run_slave.ts in daemon/ and docs/deploy.md exists', () => {
    const texts = ['docker/Dockerfile', 'docker/compose.yaml', 'supervisor/spiderplane.conf', 'systemd/spiderplane-master.service', 'systemd/spiderplane-slave.service']
      .map((p) => read(...p.split('/')));
    const guide = join(ROOT, 'docs', 'deploy.md');
    if (existsSync(guide)) texts.push(readFileSync(guide, 'utf8'));
    let seen = 0;
    for (const text of texts) {
      // a command line running one of the programs, with its backslash continuations
      for (const m of text.matchAll(/run_(master|slave)\.ts((?:[^\n`]*\\\n)*[^\n`]*)/g)) {
        const args = m[2]!.replace(/\\\n/g, ' ').replace(/#.*$/gm, '').split(/\s+/).filter((a) => a.startsWith('--'));
        for (const a of args) {
          seen++;
          const flag = a.split('=')[0]!.slice(2);
          assert.ok(SPECS[m[1] as Role].some((o) => o.flag === flag) || flag === 'config' || flag === 'help', `--${flag} is not a ${m[1]} flag: ${m[0].slice(0, 120)}`);
        }
      }
    }
    assert.ok(seen > 0);
  });
});

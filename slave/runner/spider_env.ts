/**
 * The environment a spider (and every other child that runs package code, such as `scrapy list`)
 * starts with. Guarantee: it is built from an allow-list, never by copying the daemon's
 * environment, so no platform secret (cluster token, passwords, database URL) reaches package code.
 *
 *   1. From the daemon's environment, only: PATH, LANG, LANGUAGE, LC_*, TZ, the proxy variables
 *      (http_proxy, https_proxy, ftp_proxy, all_proxy, no_proxy, either case), and pip's and npm's
 *      own settings (PIP_*, NPM_*, npm_config_*, NPM_CONFIG_*), so builds see the site's index.
 *   2. HOME: the run-as user's home when it exists, else the job's work folder.
 *   3. The operator's additions: --spider-env K=V (a literal) and --spider-env-pass NAME (copied
 *      from the daemon's environment). Names reserved for the platform are refused at start.
 *   4. The package's own variables (a generic manifest's "env"), then the job variables
 *      (SCRAPY_*, SCRAPYD_*, SPIDERPLANE_*), which nothing can override.
 * Pure: the daemon's environment is passed in.
 */

export class SpiderEnvError extends Error {}

/** Variables copied from the daemon's environment by default. */
const ALLOWED_EXACT = new Set([
  'PATH', 'LANG', 'LANGUAGE', 'TZ',
  'http_proxy', 'https_proxy', 'ftp_proxy', 'all_proxy', 'no_proxy',
  'HTTP_PROXY', 'HTTPS_PROXY', 'FTP_PROXY', 'ALL_PROXY', 'NO_PROXY',
]);
const ALLOWED_PREFIXES = ['LC_', 'PIP_', 'NPM_', 'npm_config_', 'NPM_CONFIG_'];

/**
 * Names an operator may not add: the platform's own (SPIDERPLANE_*, which holds its secrets and
 * the job variables) and Scrapyd's job variables. Case-insensitive, as a mistyped case must not
 * become a way around it.
 */
const RESERVED_PREFIXES = ['SPIDERPLANE_', 'SCRAPY_', 'SCRAPYD_'];

export function isDefaultAllowed(name: string): boolean {
  return ALLOWED_EXACT.has(name) || ALLOWED_PREFIXES.some((p) => name.startsWith(p));
}

export function isReservedName(name: string): boolean {
  const upper = name.toUpperCase();
  return RESERVED_PREFIXES.some((p) => upper.startsWith(p));
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface SpiderEnvConfig {
  /** --spider-env K=V, in order (a later K wins). */
  set: Array<[string, string]>;
  /** --spider-env-pass NAME. */
  pass: string[];
}

/** Validates the operator's --spider-env / --spider-env-pass values; throws SpiderEnvError naming the bad one. */
export function parseSpiderEnvOptions(set: readonly string[], pass: readonly string[]): SpiderEnvConfig {
  const out: SpiderEnvConfig = { set: [], pass: [] };
  for (const entry of set) {
    const eq = entry.indexOf('=');
    const name = eq > 0 ? entry.slice(0, eq) : '';
    if (!NAME.test(name)) throw new SpiderEnvError(`--spider-env '${entry}': expected NAME=VALUE with NAME made of letters, digits and _`);
    if (isReservedName(name)) throw new SpiderEnvError(`--spider-env ${name}: names starting with SPIDERPLANE_, SCRAPY_ or SCRAPYD_ are reserved for the platform and the job variables, and are never given to spiders this way`);
    if (entry.includes('\0')) throw new SpiderEnvError(`--spider-env ${name}: the value contains a NUL byte`);
    out.set.push([name, entry.slice(eq + 1)]);
  }
  for (const name of pass) {
    if (!NAME.test(name)) throw new SpiderEnvError(`--spider-env-pass '${name}': expected a variable name (letters, digits and _)`);
    if (isReservedName(name)) throw new SpiderEnvError(`--spider-env-pass ${name}: the platform's SPIDERPLANE_* variables (cluster token, passwords, database URL) and the job variables are never passed to spiders`);
    out.pass.push(name);
  }
  return out;
}

/** The base environment of every child that runs package code, before package and job variables. */
export function spiderBaseEnv(daemonEnv: NodeJS.ProcessEnv, cfg: SpiderEnvConfig, home: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(daemonEnv)) {
    if (v !== undefined && isDefaultAllowed(k)) env[k] = v;
  }
  if (env.PATH === undefined) env.PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  env.HOME = home;
  for (const name of cfg.pass) {
    const v = daemonEnv[name];
    if (v !== undefined) env[name] = v;
  }
  for (const [k, v] of cfg.set) env[k] = v;
  return env;
}

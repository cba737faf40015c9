// Runs every test file in one `node --test` (SPIDERPLANE_TEST_CONCURRENCY at a time, 6 by default),
// the slowest first: with the long files started early, the last minutes are not one long file
// running alone while the other slots sit idle. Weights are each file's wall time in seconds within
// a whole run on a 2-core machine (SPIDERPLANE_TEST_TIMING prints them); a file not listed counts as short.
//   tsx test/run_suite.ts [--list] [--only REGEX] [--typecheck]    (npm test runs it inside test/with_postgres.ts)
// Each test file runs as plain node from one esbuild bundle of the suite; SPIDERPLANE_TEST_TSX=1
// runs the sources through tsx instead (and test daemons too).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBundle } from './helpers/daemon_bundle.ts';
import { buildDemoEgg } from './helpers/fixtures.ts';

const WEIGHT: Record<string, number> = {
  'spawned/deps': 78, no_double_crawl: 67, 'postgres/services': 63, 'postgres/ui_live_browser': 56, services: 55, forkserver: 52,
  ui_live_browser: 49, 'postgres/run_retries': 40, ui_browser: 39, 'postgres/ui_browser': 39, run_retries: 38,
  'postgres/master_cluster': 38, deps: 37, 'postgres/master_schedules': 36, 'spawned/slave_runner': 35, master_cluster: 35,
  master_schedules: 31, ui_alerts_browser: 30, 'postgres/ui_alerts_browser': 30, 'postgres/master_api': 29, ui_screenshots: 28,
  store_auth_alerts: 28, slave_runner: 26, 'postgres/alerts': 25, master_api: 25, master_ha: 24, alerts: 23, daemon_supervisor: 19,
  'postgres/master_stall': 18, master_stall: 17, worker_pool: 16, scrapydweb_compat: 16, 'spawned/slave_api': 14,
  'spawned/scrapydweb_compat': 14, fixtures: 14, safe_zip_unit: 12, store_nodes: 9, spider_isolation: 9, scale_unit: 9, run_limits: 9,
  'postgres/scrapydweb_compat': 9, 'spawned/slave_outcome': 8, slave_bad_input: 8, daemon_nginx: 8,
};

const root = join(import.meta.dirname);
const files = ['', 'spawned', 'postgres'].flatMap((dir) =>
  readdirSync(join(root, dir)).filter((f) => f.endsWith('.test.ts')).map((f) => join('test', dir, f)));
const weight = (f: string) => WEIGHT[f.replace(/^test\//, '').replace(/\.test\.ts$/, '')] ?? 0;
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt >= 0 ? new RegExp(process.argv[onlyAt + 1] ?? '') : null;
const ordered = files.map((f, i) => ({ f, i })).sort((a, b) => weight(b.f) - weight(a.f) || a.i - b.i).map((x) => x.f).filter((f) => !only || only.test(f));

if (process.argv.includes('--list')) {
  console.log(ordered.join('\n'));
} else {
  const concurrency = process.env.SPIDERPLANE_TEST_CONCURRENCY ?? '6';
  let child: ChildProcess;
  if (process.env.SPIDERPLANE_TEST_TSX === '1') {
    child = spawn('tsx', ['--test', `--test-concurrency=${concurrency}`, ...ordered], { stdio: 'inherit' });
  } else {
    // Every test file and program built once (test/helpers/daemon_bundle.ts): each test process is
    // plain node. Source maps point failures and test locations at the .ts files.
    const dir = mkdtempSync(join(tmpdir(), 'spiderplane-suite-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    // The demo egg too: one `setup.py bdist_egg` for the suite, not one per test file.
    // Node's runner sorts the files it is given by path: numbered names keep the order chosen above.
    const tests = ordered.map((source, i) => ({ source, out: `run/${String(i).padStart(3, '0')}-${source.replace(/^test\//, '').replaceAll('/', '-').replace(/\.ts$/, '')}` }));
    const [, egg] = await Promise.all([buildBundle(dir, tests, true), buildDemoEgg(join(dir, 'demo-egg'))]);
    // SPIDERPLANE_TEST_TIMING=FILE: when each file's tests ran, for the weights above.
    const timing = process.env.SPIDERPLANE_TEST_TIMING;
    const reporters = timing ? ['--test-reporter=tap', '--test-reporter-destination=stdout', `--test-reporter=${join(root, 'helpers', 'timing_reporter.mjs')}`, `--test-reporter-destination=${timing}`] : [];
    // (Without source maps then: they would name the base file of test/postgres/* and test/spawned/*.)
    child = spawn(process.execPath, [...(timing ? [] : ['--enable-source-maps']), '--test', `--test-concurrency=${concurrency}`, ...reporters, ...tests.map((t) => join(dir, `${t.out}.mjs`))], {
      stdio: 'inherit', env: { ...process.env, SPIDERPLANE_TEST_BUNDLE_DIR: dir, SPIDERPLANE_TEST_DEMO_EGG: egg },
    });
  }
  // --typecheck: tsc runs beside the tests (at a lower priority), not before them; its verdict counts too.
  const typecheck = process.argv.includes('--typecheck') ? typecheckInBackground() : Promise.resolve(0);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => {
    void typecheck.then((tscCode) => process.exit(code || (signal ? 1 : 0) || tscCode));
  });
}

function typecheckInBackground(): Promise<number> {
  const tsc = spawn('nice', ['-n', '10', 'sh', '-c', 'tsc --noEmit -p . && tsc --noEmit -p master/web/client'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  tsc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  tsc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => tsc.once('exit', (code) => {
    if (code !== 0) console.error(`# tsc found errors (exit ${code}):\n${out}`);
    else console.log('# tsc: no type errors');
    resolve(code === 0 ? 0 : 1);
  }));
}

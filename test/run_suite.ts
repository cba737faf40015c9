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
  no_double_crawl: 66, 'postgres/services': 61, services: 60, deps: 55, forkserver: 54, 'postgres/ui_live_browser': 44,
  'postgres/run_retries': 43, 'postgres/master_cluster': 43, ui_live_browser: 42, 'postgres/master_api': 42, master_cluster: 42,
  run_retries: 37, master_schedules: 35, master_api: 33, 'postgres/master_schedules': 32, 'postgres/ui_browser': 31,
  'postgres/alerts': 31, 'spawned/deps': 29, 'spawned/slave_runner': 28, 'postgres/ui_alerts_browser': 28, slave_runner: 27,
  ui_screenshots: 26, ui_browser: 26, master_ha: 26, ui_alerts_browser: 25, alerts: 24, daemon_supervisor: 18,
  'postgres/master_stall': 16, master_stall: 16, 'postgres/scrapydweb_compat': 13, store_runs: 11, 'spawned/scrapydweb_compat': 11,
  scrapydweb_compat: 11, slave_api: 10, store_nodes: 9, store_auth_alerts: 9, 'spawned/spider_isolation': 9, 'spawned/slave_api': 9,
  'spawned/scrapydweb_deploy': 9, 'postgres/alerts_catchup': 9, master_db_migrate: 9, daemon_nginx: 9, scrapydweb_deploy: 8,
  'postgres/master_run_record': 8, 'postgres/master_history': 8,
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

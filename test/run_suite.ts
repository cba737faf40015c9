// Runs every test file in one `node --test` (files run four at a time), the slowest first: with the
// long files started early, the last minutes are not one long file running alone while three slots
// sit idle. Weights are each file's wall time alone, in seconds (measured on a 2-core machine); a
// file not listed counts as short. test/spawned/* and test/postgres/* weigh what their base file does.
//   tsx test/run_suite.ts [--list] [--only REGEX]    (npm test runs it inside test/with_postgres.ts)
// Each test file runs as plain node from one esbuild bundle of the suite; SPIDERPLANE_TEST_TSX=1
// runs the sources through tsx instead (and test daemons too).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { buildBundle } from './helpers/daemon_bundle.ts';
import { buildDemoEgg } from './helpers/fixtures.ts';

const WEIGHT: Record<string, number> = {
  services: 70, no_double_crawl: 64, master_ha: 60, ui_live_browser: 47, deps: 46, master_cluster: 40, forkserver: 39,
  run_retries: 37, master_schedules: 34, ui_browser: 29, alerts: 29, scrapydweb_compat: 28, ui_screenshots: 26,
  slave_runner: 23, master_api: 21, master_stall: 18, ui_alerts_browser: 17, master_db_migrate: 15, daemon_supervisor: 15,
  scrapydweb_deploy: 14, master_login_limit: 12, fixtures: 12, daemon_bind_auth: 11, scrapyd_protocol: 10,
};

const root = join(import.meta.dirname);
const files = ['', 'spawned', 'postgres'].flatMap((dir) =>
  readdirSync(join(root, dir)).filter((f) => f.endsWith('.test.ts')).map((f) => join('test', dir, f)));
const weight = (f: string) => WEIGHT[basename(f, '.test.ts')] ?? 0;
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt >= 0 ? new RegExp(process.argv[onlyAt + 1] ?? '') : null;
const ordered = files.map((f, i) => ({ f, i })).sort((a, b) => weight(b.f) - weight(a.f) || a.i - b.i).map((x) => x.f).filter((f) => !only || only.test(f));

if (process.argv.includes('--list')) {
  console.log(ordered.join('\n'));
} else {
  const concurrency = process.env.SPIDERPLANE_TEST_CONCURRENCY ?? '4';
  let child: ChildProcess;
  if (process.env.SPIDERPLANE_TEST_TSX === '1') {
    child = spawn('tsx', ['--test', `--test-concurrency=${concurrency}`, ...ordered], { stdio: 'inherit' });
  } else {
    // Every test file and program built once (test/helpers/daemon_bundle.ts): each test process is
    // plain node. Source maps point failures and test locations at the .ts files.
    const dir = mkdtempSync(join(tmpdir(), 'spiderplane-suite-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    // The demo egg too: one `setup.py bdist_egg` for the suite, not one per test file.
    const [, egg] = await Promise.all([buildBundle(dir, ordered, true), buildDemoEgg(join(dir, 'demo-egg'))]);
    // SPIDERPLANE_TEST_TIMING=FILE: when each file's tests ran, for the weights above.
    const timing = process.env.SPIDERPLANE_TEST_TIMING;
    const reporters = timing ? ['--test-reporter=tap', '--test-reporter-destination=stdout', `--test-reporter=${join(root, 'helpers', 'timing_reporter.mjs')}`, `--test-reporter-destination=${timing}`] : [];
    // (Without source maps then: they would name the base file of test/postgres/* and test/spawned/*.)
    child = spawn(process.execPath, [...(timing ? [] : ['--enable-source-maps']), '--test', `--test-concurrency=${concurrency}`, ...reporters, ...ordered.map((f) => join(dir, f.replace(/\.ts$/, '.mjs')))], {
      stdio: 'inherit', env: { ...process.env, SPIDERPLANE_TEST_BUNDLE_DIR: dir, SPIDERPLANE_TEST_DEMO_EGG: egg },
    });
  }
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

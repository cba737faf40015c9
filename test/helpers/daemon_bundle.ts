// The programs the tests start (run_slave.ts, run_master.ts, cli/main.ts), bundled by esbuild once
// per test file into a temp folder, so each start is `node bundle.mjs` instead of tsx transpiling
// and resolving ~150 modules through its loader hooks (about 0.3 s CPU a slave, 0.5 s a master).
//
// Guarantee: a bundle behaves as the sources run through tsx. npm packages stay external (loaded
// from the repo's node_modules through a symlink beside the bundle: native modules, esbuild itself),
// and every `import.meta.url` / `import.meta.dirname` / `import.meta.filename` in the repo's own
// files is replaced by that file's real location, so templates, static assets, keeper.mjs and
// forkserver.py are found where they are. Worker threads start bundled too: a worker entry named
// in WORKERS is built beside the programs, and the pool's tsx_worker.mjs shim (which registers tsx
// in the thread) becomes plain_worker.mjs, which imports the bundled entry (any other .ts entry
// still gets tsx).
// SPIDERPLANE_TEST_TSX=1 starts the programs through tsx instead (to rule the bundle out).
import { build, type Plugin } from 'esbuild';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = resolve(import.meta.dirname, '..', '..');
/** Spelled in two parts so that this file, bundled with the suite, is not rewritten by its own plugin. */
const META = ['import', 'meta'].join('.');

/** The entry points tests spawn, relative to the repo. */
const ENTRIES = ['run_slave.ts', 'run_master.ts', 'cli/main.ts'] as const;
export type BundledEntry = (typeof ENTRIES)[number];
/** Worker thread entries (`new URL('./x.ts', import.meta.url)` handed to a WorkerPool). */
const WORKERS = ['common/packages/package_check_worker.ts'];

const outName = (entry: string) => entry.replace(/\.ts$/, '').replaceAll('/', '_');
const OWN_SOURCE = /\.(ts|mts|mjs|js)$/;

/** The worker shim of the bundle: the entry is already JavaScript, unless it is not in WORKERS. */
const PLAIN_WORKER = `// Written by test/helpers/daemon_bundle.ts.
import { workerData } from 'node:worker_threads';
if (workerData.entry.endsWith('.ts')) (await import('tsx/esm/api')).register();
await import(workerData.entry);
`;

/**
 * Replaces import.meta.url, .dirname and .filename in the repo's own files by the file's real place, and
 * points worker entries and the worker shim at the bundle's.
 */
const keepImportMeta = (outDir: string): Plugin => ({
  name: 'keep-import-meta',
  setup(b) {
    b.onLoad({ filter: OWN_SOURCE }, async (args) => {
      if (args.path.includes('/node_modules/')) return undefined;
      const loader = /\.m?ts$/.test(args.path) ? 'ts' : 'js';
      const src = await readFile(args.path, 'utf8');
      if (!src.includes(META)) return { contents: src, loader };
      const bundled = (file: string) => `new URL(${JSON.stringify(pathToFileURL(join(outDir, file)).href)})`;
      const contents = src
        .replace(/new URL\((['"])(\.{1,2}\/[^'"]+)\1, import\.meta\.url\)/g, (call: string, _q: string, rel: string) => {
          const target = relative(ROOT, resolve(dirname(args.path), rel));
          if (rel === './tsx_worker.mjs') return bundled('plain_worker.mjs');
          return WORKERS.includes(target) ? bundled(`${outName(target)}.mjs`) : call;
        })
        .replaceAll(`${META}.url`, JSON.stringify(pathToFileURL(args.path).href))
        .replaceAll(`${META}.dirname`, JSON.stringify(dirname(args.path)))
        .replaceAll(`${META}.filename`, JSON.stringify(args.path));
      if (/import\.meta(?!\.(url|dirname|filename))/.test(contents)) throw new Error(`${relative(ROOT, args.path)} uses ${META} in a way the test bundle does not keep`);
      return { contents, loader };
    });
  },
});

let built: Promise<string> | null = null;

/**
 * Builds the programs, the worker entries and `tests` (each a repo-relative .ts `source`, written to
 * `out`.mjs) into `dir`. run_suite.ts builds every test file this way once, so each
 * test process is plain node, not tsx's loader (about 0.3 s of CPU a file).
 */
export async function buildBundle(dir: string, tests: ReadonlyArray<{ source: string; out: string }> = [], sourcemap = false): Promise<void> {
  // Readable by all: some tests start a daemon as another user.
  chmodSync(dir, 0o755);
  // Bare imports from the bundle resolve through this link to the repo's own packages.
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  writeFileSync(join(dir, 'plain_worker.mjs'), PLAIN_WORKER);
  await build({
    absWorkingDir: ROOT,
    entryPoints: Object.fromEntries([
      ...[...ENTRIES, ...WORKERS].map((e) => [outName(e), join(ROOT, e)]),
      ...tests.map((t) => [t.out, join(ROOT, t.source)]),
    ]),
    outdir: dir, outExtension: { '.js': '.mjs' },
    bundle: true, splitting: true, platform: 'node', format: 'esm', target: 'node20',
    packages: 'external', plugins: [keepImportMeta(dir)], logLevel: 'error', sourcemap,
  });
}

async function buildOnce(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'spiderplane-bundle-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  await buildBundle(dir);
  return dir;
}

/**
 * The node arguments that start `entry` (before its own arguments): the bundle (the suite's, when
 * run_suite.ts built one: SPIDERPLANE_TEST_BUNDLE_DIR), or tsx's loader with the source when
 * SPIDERPLANE_TEST_TSX=1.
 */
export async function programArgs(entry: BundledEntry): Promise<string[]> {
  if (process.env.SPIDERPLANE_TEST_TSX === '1') return ['--import', 'tsx', join(ROOT, entry)];
  const suite = process.env.SPIDERPLANE_TEST_BUNDLE_DIR;
  if (suite) return [join(suite, `${outName(entry)}.mjs`)];
  built ??= buildOnce();
  return [join(await built, `${outName(entry)}.mjs`)];
}

// The worker-thread pool that keeps package checks off the event loop, and the package check run
// through it: real worker threads (TypeScript through tsx_worker.mjs), real zips.
// Run: npx tsx --test test/worker_pool.test.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CHUNK_BYTES, PoolBusy, WorkerPool, WorkerTaskError } from '../common/workers/worker_pool.ts';
import { checkPackageOffThread } from '../common/packages/package_checker.ts';
import { MAX_META_BYTES } from '../common/packages/package_check.ts';
import { DEFAULT_ZIP_LIMITS, ZipRejected } from '../common/packages/safe_zip.ts';
import { ManifestError } from '../common/packages/manifest.ts';
import { rawZip } from './helpers/raw_zip.ts';
import { waitFor } from './helpers/slave_process.ts';

const testWorker = new URL('./helpers/pool_test_worker.ts', import.meta.url);
const pool = (size: number, maxQueued: number) => new WorkerPool({ entry: testWorker, size, maxQueued, taskTimeoutMs: 60_000, idleMs: 60_000 });

test('bytes larger than one piece reach the worker whole and in order', async () => {
  const p = pool(1, 0);
  try {
    const data = randomBytes(2 * CHUNK_BYTES + 12345);
    const r = await p.run<{ length: number; sha256: string }>('digest', null, data);
    assert.deepEqual(r, { length: data.length, sha256: createHash('sha256').update(data).digest('hex') });
    // A view into a larger buffer sends only its own bytes; the caller's buffer stays usable.
    const view = data.subarray(100, 5100);
    assert.equal((await p.run<{ length: number }>('digest', null, view)).length, 5000);
    assert.equal(data.length, 2 * CHUNK_BYTES + 12345);
  } finally {
    await p.close();
  }
});

test('at most `size` tasks run, `maxQueued` wait, the next is refused at once; all finish once released', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'spiderplane-pool-'));
  const p = pool(2, 3);
  try {
    const release = path.join(dir, 'release');
    const held = Array.from({ length: 5 }, (_, i) => p.run<string>('hold', { file: release, tag: `t${i}` }));
    await waitFor('two tasks running', () => (p.load().running === 2 ? true : undefined));
    assert.deepEqual(p.load(), { running: 2, queued: 3 });
    await assert.rejects(p.run('hold', { file: release, tag: 'one too many' }), PoolBusy);
    await writeFile(release, '');
    assert.deepEqual(await Promise.all(held), ['t0', 't1', 't2', 't3', 't4']);
    assert.deepEqual(p.load(), { running: 0, queued: 0 });
  } finally {
    await p.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a task that throws or kills its worker fails alone; the pool goes on', async () => {
  const p = pool(1, 4);
  try {
    await assert.rejects(p.run('throw', null), (e: unknown) => e instanceof WorkerTaskError && e.errorName === 'Custom' && e.message === 'it went wrong in the worker');
    await assert.rejects(p.run('crash', null), /the worker exited with code 7/);
    await assert.rejects(p.run('nosuch', null), /unknown worker task 'nosuch'/);
    assert.equal((await p.run<{ length: number }>('digest', null, Buffer.from('still here'))).length, 10);
  } finally {
    await p.close();
  }
});

test('a task over its time limit is stopped and its worker replaced', async () => {
  const p = new WorkerPool({ entry: testWorker, size: 1, maxQueued: 1, taskTimeoutMs: 1000, idleMs: 60_000 });
  try {
    await assert.rejects(p.run('hold', { file: '/nonexistent/never', tag: 'x' }), /took longer than 1 s and was stopped/);
    assert.equal((await p.run<{ length: number }>('digest', null, Buffer.from('abc'))).length, 3);
  } finally {
    await p.close();
  }
});

const MANIFEST = JSON.stringify({ spiders: { b: { command: 'true' }, a: { command: ['node', 'a.js'] } } });

test('checkPackageOffThread: a generic package, checked and unpacked in a worker', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'spiderplane-check-'));
  try {
    const zip = rawZip([{ name: 'spiderplane.json', content: MANIFEST }, { name: 'lib/a.js', content: 'console.log(1)\n'.repeat(100) }]);
    const dest = path.join(dir, 'pkg');
    const c = await checkPackageOffThread(zip, { limits: DEFAULT_ZIP_LIMITS, extractGenericTo: dest });
    assert.deepEqual(Object.keys(c.manifest!.spiders).sort(), ['a', 'b']);
    assert.equal(c.sha256, createHash('sha256').update(zip).digest('hex'));
    assert.equal(c.size, zip.length);
    assert.equal(c.extracted, true);
    assert.equal(await readFile(path.join(dest, 'lib/a.js'), 'utf8'), 'console.log(1)\n'.repeat(100));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('checkPackageOffThread: an egg gives its settings module; a zip with neither gives null', async () => {
  const egg = rawZip([{ name: 'EGG-INFO/entry_points.txt', content: '[scrapy]\nsettings = demo.settings\n' }, { name: 'demo/__init__.py', content: '' }]);
  assert.equal((await checkPackageOffThread(egg, { limits: DEFAULT_ZIP_LIMITS, extractGenericTo: null })).settingsModule, 'demo.settings');
  const neither = rawZip([{ name: 'x.txt', content: 'x' }]);
  const c = await checkPackageOffThread(neither, { limits: DEFAULT_ZIP_LIMITS, extractGenericTo: null });
  assert.equal(c.manifest, null);
  assert.equal(c.settingsModule, null);
});

test('checkPackageOffThread: refusals keep their class and message, and nothing is unpacked', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'spiderplane-check-'));
  try {
    const dest = path.join(dir, 'pkg');
    const cases: Array<[Buffer, typeof ZipRejected | typeof ManifestError, RegExp]> = [
      [rawZip([{ name: 'spiderplane.json', content: MANIFEST }, { name: '../evil.txt', content: 'x' }]), ZipRejected, /escapes the package folder/],
      [rawZip([{ name: 'spiderplane.json', content: MANIFEST }, { name: 'big', content: Buffer.alloc(10_000), size: 10 }]), ZipRejected, /more than its declared size|disagree/],
      [rawZip([{ name: 'spiderplane.json', content: '{"spiders": {}}' }]), ManifestError, /needs a non-empty "spiders" object/],
      [rawZip([{ name: 'spiderplane.json', content: ' '.repeat(MAX_META_BYTES + 1) }]), ZipRejected, /spiderplane.json is larger than 1 MiB/],
      [rawZip([{ name: 'a', content: 'x' }, { name: 'b', content: 'y' }]), ZipRejected, /2 entries, more than the limit of 1/],
    ];
    for (const [i, [zip, cls, message]] of cases.entries()) {
      const limits = i === 4 ? { ...DEFAULT_ZIP_LIMITS, maxEntries: 1 } : DEFAULT_ZIP_LIMITS;
      await assert.rejects(checkPackageOffThread(zip, { limits, extractGenericTo: dest }), (e: unknown) => {
        assert.ok(e instanceof cls, `case ${i}: ${String(e)}`);
        assert.match((e as Error).message, message);
        return true;
      });
      assert.equal(existsSync(dest), false, `case ${i} left ${dest}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

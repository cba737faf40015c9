// Item: a Node spider must never inherit the daemon's module settings. The quick start keeps the
// slave's data in ./data inside the spiderplane checkout, whose package.json says "type": "module";
// a package unpacked there without a package.json of its own would have its .js files loaded as ES
// modules and require() would fail. Here the slave's data dir sits inside such a folder, as in the
// quick start, and runs a CommonJS spider (no package.json) and an ESM one (its own package.json).
// Run: npx tsx --test test/slave_node_boundary.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { startSlave, tempDir, uploadEgg, type SlaveHandle } from './helpers/slave_process.ts';
import { buildZip } from './helpers/fixtures.ts';
import { schedule, waitFinished, fetchText, jsonLines } from './helpers/runner_checks.ts';

const project = tempDir('spiderplane-quickstart-');
let slave: SlaveHandle;

before(async () => {
  // The quick start's layout: a Node project with "type": "module" and the data in ./data/slave.
  chmodSync(project, 0o755);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'spiderplane', type: 'module', private: true }));
  const dataDir = join(project, 'data', 'slave');
  mkdirSync(dataDir, { recursive: true });
  slave = await startSlave({ dataDir });
});

after(async () => {
  await slave?.stop().catch(() => undefined);
  await fsp.rm(project, { recursive: true, force: true });
});

test('a CommonJS spider without a package.json runs under a data dir inside a "type": "module" project', async () => {
  const zip = await buildZip(join(project, 'cjs.zip'), {
    'spiderplane.json': JSON.stringify({ spiders: { cjs: { command: ['node', 'cjs.js'] } } }),
    'cjs.js': `'use strict'
const fs = require('node:fs')
const { double } = require('./lib/math.js')
fs.appendFileSync(process.env.SPIDERPLANE_ITEMS_FILE, JSON.stringify({ kind: typeof module, two: double(1) }) + '\\n')
console.log('cjs spider done')
`,
    'lib/math.js': `module.exports = { double: (x) => x * 2 }\n`,
  });
  const r = await uploadEgg(slave.url, 'cjs', '1', await fsp.readFile(zip));
  assert.equal(r.status, 'ok', JSON.stringify(r));
  const id = await schedule(slave.url, [['project', 'cjs'], ['spider', 'cjs']]);
  const rec = await waitFinished(slave.url, id);
  const log = (await fetchText(slave.url, `/logs/cjs/cjs/${id}.log`)).text;
  assert.equal(rec.exit_code, 0, `the spider failed:\n${log}`);
  assert.equal(rec.outcome, 'succeeded');
  assert.deepEqual(jsonLines((await fetchText(slave.url, `/items/cjs/cjs/${id}.jl`)).text), [{ kind: 'object', two: 2 }]);
  // The boundary is the package's own package.json, written at upload.
  const pkgDir = join(slave.dataDir, 'packages', 'cjs', '1');
  assert.equal(JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).type, 'commonjs');
});

test('a package that ships its own package.json keeps it ("type": "module" spider with import)', async () => {
  const own = JSON.stringify({ name: 'esm-spider', type: 'module' });
  const zip = await buildZip(join(project, 'esm.zip'), {
    'spiderplane.json': JSON.stringify({ spiders: { esm: { command: ['node', 'esm.js'] } } }),
    'package.json': own,
    'esm.js': `import { appendFileSync } from 'node:fs'
appendFileSync(process.env.SPIDERPLANE_ITEMS_FILE, JSON.stringify({ esm: typeof require === 'undefined' }) + '\\n')
console.log('esm spider done')
`,
  });
  const r = await uploadEgg(slave.url, 'esm', '1', await fsp.readFile(zip));
  assert.equal(r.status, 'ok', JSON.stringify(r));
  const id = await schedule(slave.url, [['project', 'esm'], ['spider', 'esm']]);
  const rec = await waitFinished(slave.url, id);
  const log = (await fetchText(slave.url, `/logs/esm/esm/${id}.log`)).text;
  assert.equal(rec.exit_code, 0, `the spider failed:\n${log}`);
  assert.deepEqual(jsonLines((await fetchText(slave.url, `/items/esm/esm/${id}.jl`)).text), [{ esm: true }]);
  assert.equal(readFileSync(join(slave.dataDir, 'packages', 'esm', '1', 'package.json'), 'utf8'), own, 'the package\'s own package.json is untouched');
});

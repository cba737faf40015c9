// Deploy times with per-project dependencies on one slave (issue 10): the first version of an egg
// with one requirement (the environment is built: venv + pip install from a local wheelhouse,
// offline), a second version with the same requirements (the environment is shared: no build),
// and a version with none. Prints numbers, asserts nothing.
// Run: npx tsx bench/deps.bench.ts
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startSlave, tempDir, uploadEgg } from '../test/helpers/slave_process.ts';
import { buildDepsEgg, buildWheelhouse } from '../test/helpers/deps_fixtures.ts';

const ROUNDS = Number(process.argv[2] ?? 3);
const work = tempDir('spiderplane-deps-bench-');
const wheelhouse = await buildWheelhouse(work, ['1.0']);
const withReq = await buildDepsEgg(work, { installRequires: ['tinylib==1.0'] });
// The same spider without the import would fail `scrapy list` only if it imported tinylib: this one
// carries tinylib's module itself (an uberegg-like copy), so it deploys without requirements.
const plain = await buildDepsEgg(work, { bundleTinylib: true });
const npmCache = join(work, 'npm-cache');
mkdirSync(npmCache);
chmodSync(npmCache, 0o777);

const first: number[] = [];
const second: number[] = [];
const none: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const h = await startSlave({ env: { PIP_NO_INDEX: '1', PIP_FIND_LINKS: wheelhouse, npm_config_cache: npmCache } });
  try {
    const time = async (project: string, version: string, egg: Buffer): Promise<number> => {
      const t0 = performance.now();
      const r = await uploadEgg(h.url, project, version, egg);
      if (r.status !== 'ok') throw new Error(`deploy ${project} ${version}: ${JSON.stringify(r)}`);
      return performance.now() - t0;
    };
    await time('warm', 'v1', plain); // the slave's first upload pays one-off start-up costs
    first.push(await time('deps', 'v1', withReq));
    second.push(await time('deps', 'v2', withReq));
    none.push(await time('plain', 'v1', plain));
  } finally {
    await h.stop();
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (xs: number[]) => `median ${median(xs).toFixed(0)} ms (${xs.map((x) => x.toFixed(0)).join(', ')})`;
console.log(`addversion.json on one slave, ${ROUNDS} fresh slaves:`);
console.log(`  first version, one requirement (venv + pip install): ${fmt(first)}`);
console.log(`  second version, same requirements (shared env):     ${fmt(second)}`);
console.log(`  a version with no requirements:                      ${fmt(none)}`);

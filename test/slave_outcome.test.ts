// A run that exited 0 but went wrong is 'finished_with_errors' on the slave (/jobs.json), with the
// exit status kept and a note saying why: errors in its log, Scrapy closing it for another reason
// than 'finished', or no items where the spider's previous run had some.
// Run: npx tsx --test test/slave_outcome.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { startSlave, tempDir, uploadEgg, type SlaveHandle } from './helpers/slave_process.ts';
import { buildDemoEgg, buildNodePackage, buildZip } from './helpers/fixtures.ts';
import { schedule, waitFinished } from './helpers/runner_checks.ts';

const work = tempDir('spiderplane-outcome-');
let slave: SlaveHandle;

before(async () => {
  slave = await startSlave();
  const [egg, nodePkg, extra] = await Promise.all([
    buildDemoEgg(join(work, 'egg')),
    buildNodePackage(join(work, 'nodepkg')),
    buildZip(join(work, 'extra.zip'), {
      'spiderplane.json': JSON.stringify({ spiders: {
        // Scrapy-style log lines: one ERROR, and the process still exits 0.
        refused: { command: 'echo "2026-11-30 10:00:00 [refused] INFO: starting"; echo "2026-11-30 10:00:01 [refused] ERROR: Connection refused"; exit 0' },
      } }),
    }),
  ]);
  for (const [project, file] of [['demo', egg], ['nodepkg', nodePkg], ['extra', extra]] as const) {
    const r = await uploadEgg(slave.url, project, '1', await fsp.readFile(file));
    assert.equal(r.status, 'ok', JSON.stringify(r));
  }
});

after(async () => {
  await slave?.stop().catch(() => undefined);
  await fsp.rm(work, { recursive: true, force: true });
});

test('an ERROR line in the log of a spider that exits 0: finished_with_errors, exit_code 0', async () => {
  const rec = await waitFinished(slave.url, await schedule(slave.url, [['project', 'extra'], ['spider', 'refused']]));
  assert.equal(rec.exit_code, 0);
  assert.equal(rec.error_count, 1);
  assert.equal(rec.outcome, 'finished_with_errors');
  assert.equal(rec.note, 'finished with errors: 1 error logged');
});

test('no items where the previous run had some: finished_with_errors; items again: succeeded', async () => {
  const count = (n: string) => schedule(slave.url, [['project', 'nodepkg'], ['spider', 'count'], ['n', n], ['interval_ms', '10']]);
  const first = await waitFinished(slave.url, await count('2'));
  assert.equal(first.outcome, 'succeeded');
  assert.equal(first.items_count, 2);
  const empty = await waitFinished(slave.url, await count('0'));
  assert.equal(empty.exit_code, 0);
  assert.equal(empty.outcome, 'finished_with_errors');
  assert.equal(empty.note, 'finished with errors: no items, where the previous run scraped 2');
  const again = await waitFinished(slave.url, await count('1'));
  assert.equal(again.outcome, 'succeeded');
  // A spider whose earlier runs scraped nothing is not judged by its items.
  const other = await waitFinished(slave.url, await schedule(slave.url, [['project', 'extra'], ['spider', 'refused']]));
  assert.doesNotMatch(other.note ?? '', /no items/);
});

test('Scrapy closed for another reason than "finished" (CLOSESPIDER_ITEMCOUNT): finished_with_errors; a clean crawl: succeeded', async () => {
  const cut = await waitFinished(slave.url, await schedule(slave.url, [['project', 'demo'], ['spider', 'quick'], ['count', '20'], ['setting', 'CLOSESPIDER_ITEMCOUNT=1'], ['setting', 'CONCURRENT_REQUESTS=1']]));
  assert.equal(cut.exit_code, 0);
  assert.equal(cut.outcome, 'finished_with_errors');
  assert.match(cut.note ?? '', /Scrapy's finish reason is 'closespider_itemcount'/);
  const clean = await waitFinished(slave.url, await schedule(slave.url, [['project', 'demo'], ['spider', 'quick']]));
  assert.equal(clean.outcome, 'succeeded');
  assert.equal(clean.note, null);
});

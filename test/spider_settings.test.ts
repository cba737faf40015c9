// Issue 9, finding 6: settings given on schedule.json cannot make Scrapy write outside the job's
// work folder nor take its log away. A real slave (as root: spiders run as the run-as user), the
// real demo Scrapy egg and real Scrapy jobs.
// Run: npx tsx --test --test-concurrency=1 test/spider_settings.test.ts
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startSlave, tempDir, uploadEgg, postForm, type SlaveHandle } from './helpers/slave_process.ts';
import { buildDemoEgg } from './helpers/fixtures.ts';
import { schedule, waitFinished, fetchText, jsonLines } from './helpers/runner_checks.ts';
import { lookupUser, resolveRunAs } from '../slave/runner/run_as.ts';

const work = tempDir('spiderplane-settings-');
let slave: SlaveHandle;

before(async () => {
  slave = await startSlave();
  const up = await uploadEgg(slave.url, 'demo', '1', readFileSync(await buildDemoEgg(work)));
  assert.equal(up.status, 'ok', JSON.stringify(up));
});

after(async () => {
  await slave?.stop();
  rmSync(work, { recursive: true, force: true });
  if (slave) rmSync(slave.dataDir, { recursive: true, force: true });
});

const scheduleWith = (settings: string[]) =>
  postForm(slave.url, '/schedule.json', [['project', 'demo'], ['spider', 'quick'], ...settings.map((s): [string, string] => ['setting', s])]);

describe('schedule.json refuses settings that write outside the job\'s folder', () => {
  test('LOG_FILE is refused with a Scrapyd error, and nothing is queued or written', async () => {
    const target = join(work, 'stolen.log');
    const r = await scheduleWith([`LOG_FILE=${target}`]);
    assert.equal(r.status, 'error');
    assert.equal(r.node_name, 'testnode');
    assert.match(r.message!, new RegExp(`^setting 'LOG_FILE=${target}' is invalid: the slave keeps each job's log itself`));
    const inside = await scheduleWith(['LOG_FILE=job.log']);
    assert.equal(inside.status, 'error', 'a LOG_FILE inside the work folder would steal the log too');
    const jobs = (await (await fetch(`${slave.url}/listjobs.json?project=demo`)).json()) as { pending: unknown[]; running: unknown[]; finished: unknown[] };
    assert.equal(jobs.pending.length + jobs.running.length + jobs.finished.length, 0, 'nothing was queued');
    assert.equal(existsSync(target), false);
  });

  test('JOBDIR, HTTPCACHE_DIR, FEED_URI, FILES_STORE outside the work folder are refused; remote stores are accepted', async () => {
    for (const s of [`JOBDIR=${work}/jobdir`, 'HTTPCACHE_DIR=../../../cache', `FEED_URI=file://${work}/feed.jl`, 'FILES_STORE=/etc', 'FEED_TEMPDIR=/tmp', 'IMAGES_STORE=../x']) {
      const r = await scheduleWith([s]);
      assert.equal(r.status, 'error', s);
      assert.match(r.message!, /must stay inside the job's work folder/, s);
    }
    const remote = await scheduleWith(['FILES_STORE=s3://bucket/files']);
    assert.equal(remote.status, 'ok', JSON.stringify(remote));
    await waitFinished(slave.url, remote.jobid as string, { timeoutMs: 120_000 });
  });

  test('a job with JOBDIR and an HTTP cache inside its work folder runs as the run-as user and its log keeps Scrapy\'s output', async () => {
    const id = await schedule(slave.url, [['project', 'demo'], ['spider', 'quick'], ['setting', 'JOBDIR=state/quick'], ['setting', 'HTTPCACHE_ENABLED=True'], ['setting', 'HTTPCACHE_DIR=cache']]);
    const fin = await waitFinished(slave.url, id, { timeoutMs: 120_000 });
    assert.equal(fin.outcome, 'succeeded');
    const log = await fetchText(slave.url, `/logs/demo/quick/${id}.log`);
    assert.match(log.text, /Spider closed \(finished\)/);
    assert.equal(jsonLines((await fetchText(slave.url, `/items/demo/quick/${id}.jl`)).text).length, 3);
    const id2 = resolveRunAs(null, process.getuid?.() ?? -1, lookupUser);
    const jobdir = join(slave.dataDir, 'work', 'demo', 'state', 'quick');
    assert.ok(existsSync(jobdir), 'JOBDIR was created in the work folder');
    if (id2.uid !== null) assert.equal(statSync(jobdir).uid, id2.uid, 'written by the run-as user');
  });
});

// A master that stopped (or crashed) between a run's end and the alert rules looking at it: at the
// next start it looks at that run, and the job-failed mail goes out once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startMaster, type MasterHandle, openDatabaseOf } from './helpers/master_process.ts';
import { tempDir, waitFor } from './helpers/slave_process.ts';
import { startSmtp, type SmtpHandle } from './helpers/smtp.ts';

const OPS = 'ops@example.com';
let smtp: SmtpHandle;
let master: MasterHandle | null = null;
const dataDir = tempDir('spiderplane-catchup-');

before(async () => {
  smtp = await startSmtp();
});

after(async () => {
  await master?.stop().catch(() => undefined);
  await smtp.stop();
});

const args = () => ['--smtp-host', '127.0.0.1', '--smtp-port', String(smtp.port), '--smtp-secure', 'none', '--alert-to', OPS,
  '--alert-group-seconds', '0.5', '--alert-group-wait', '0.1', '--heartbeat-interval', '0.5'];

test('a failed run the master never evaluated (it stopped first) gets its job-failed mail at the next start, once', async () => {
  // First start: the default rules (job failed among them) are made; then the master stops.
  master = await startMaster({ dataDir, args: args() });
  const rules = await master.api<{ rules: Array<{ kind: string }> }>('GET', '/api/alerts/rules');
  assert.ok(rules.body.rules.some((r) => r.kind === 'job_failed'), 'the job-failed rule exists from the start');
  const where = { database: master.database, dataDir };
  await master.kill9();
  master = null;

  // What the crash left: a run recorded as failed, and no record that the rules looked at it.
  const db = await openDatabaseOf(where);
  const now = Date.now();
  await db.run(`INSERT INTO runs (job, project, spider, node, state, outcome, created_at, started_at, ended_at, exit_code)
              VALUES ('crashedjob1', 'shop', 'prices', 'crawl-9', 'finished', 'failed', ?, ?, ?, 1)`, [now - 5000, now - 4000, now - 1000]);
  // And an old one, from before the check table existed: it must not mail anyone now.
  await db.run(`INSERT INTO runs (job, project, spider, node, state, outcome, created_at, started_at, ended_at, exit_code)
              VALUES ('checkedjob', 'shop', 'stock', 'crawl-9', 'finished', 'failed', ?, ?, ?, 1)`, [now - 9000, now - 8000, now - 7000]);
  await db.run(`INSERT INTO alert_run_checks (run_id, checked_at) SELECT id, ? FROM runs WHERE job = 'checkedjob'`, [now - 6000]);
  await db.close();

  master = await startMaster({ dataDir, args: args() });
  await waitFor('the job-failed mail', () => (smtp.mails.some((m) => m.text.includes('crashedjob1')) ? true : undefined), 60_000, 100);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(smtp.mails.filter((m) => m.text.includes('crashedjob1')).length, 1, 'exactly one mail about the run');
  assert.equal(smtp.mails.filter((m) => m.text.includes('checkedjob')).length, 0, 'a run already looked at is not mailed again');

  // A second restart does not mail it again. Another unchecked run, of another spider, is left
  // for that start: once its mail is out, the catch-up has certainly run.
  await master.stop();
  const db2 = await openDatabaseOf(where);
  await db2.run(`INSERT INTO runs (job, project, spider, node, state, outcome, created_at, started_at, ended_at, exit_code)
              VALUES ('crashedjob2', 'shop', 'other', 'crawl-9', 'finished', 'failed', ?, ?, ?, 1)`, [Date.now() - 3000, Date.now() - 2000, Date.now() - 1000]);
  await db2.close();
  master = await startMaster({ dataDir, args: args() });
  await waitFor('the catch-up after the second restart', () => (smtp.mails.some((m) => m.text.includes('crashedjob2')) ? true : undefined), 60_000, 100);
  await new Promise((r) => setTimeout(r, 1000)); // a duplicate would be mailed with it or right after
  assert.equal(smtp.mails.filter((m) => m.text.includes('crashedjob1')).length, 1, 'still one mail after another restart');
});

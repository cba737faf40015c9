// Alerts end to end: a real master and a real slave on loopback, and a real SMTP server on
// 127.0.0.1 receiving the mails. A node stopped -> one offline mail, back -> one recovery mail;
// a CPU threshold crossed for its duration -> one mail; a crashing spider -> one job-failed mail
// with its error lines; SMTP down then up -> the mail arrives once; a master restart with a full
// outbox -> delivered after the restart, nothing twice; bad input refused.
// Run: cd /work/main && npx tsx --test test/alerts.test.ts
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startMaster, basic, CLUSTER_TOKEN, type MasterHandle } from './helpers/master_process.ts';
import { startSlave, tempDir, waitFor, type SlaveHandle } from './helpers/slave_process.ts';
import { FAST_MASTER_ARGS, deployNodePackage, sleep, waitNodeStatus } from './helpers/master_slave_pair.ts';
import { startSmtp, type ReceivedMail, type SmtpHandle } from './helpers/smtp.ts';

const OPS = 'ops@example.com';
let smtp: SmtpHandle;
let master: MasterHandle;
let masterArgs: string[];
const masterDir = tempDir('spiderplane-alerts-master-');
const slaveDir = tempDir('spiderplane-alerts-slave-');
let slave: SlaveHandle;
const slaves = new Set<SlaveHandle>();

interface Rule { id: number; name: string; kind: string; threshold: number | null; enabled: boolean; recipients: string[] }
interface Mail { id: number; to: string; subject: string; state: string; attempts: number; last_error: string | null }

const mailsTo = (to: string): ReceivedMail[] => smtp.mails.filter((m) => m.to.includes(to));
/** How many mails to `to` carry a notice whose text block starts with `head` ('FIRING: node x offline'). */
const count = (to: string, head: string): number => mailsTo(to).reduce((n, m) => n + m.text.split(/\r?\n/).filter((l) => l === head).length, 0);
const waitCount = (to: string, head: string, n = 1, timeoutMs = 60_000) =>
  waitFor(`${n} mail(s) to ${to} with '${head}'`, () => (count(to, head) >= n ? true : undefined), timeoutMs, 100);

/** The node crawl-1, with the same data dir across its restart. */
async function startSlaveNode(): Promise<SlaveHandle> {
  const s = await startSlave({ dataDir: slaveDir, args: ['--master', master.url, '--cluster-token', CLUSTER_TOKEN, '--node-name', 'crawl-1', '--metrics-interval', '1', '--max-proc', '2'] });
  slaves.add(s);
  await waitNodeStatus(master, 'crawl-1', 'online');
  return s;
}

async function createRule(body: Record<string, unknown>): Promise<Rule> {
  const r = await master.api<{ rule: Rule }>('POST', '/api/alerts/rules', body);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.rule;
}

before(async () => {
  smtp = await startSmtp();
  masterArgs = [...FAST_MASTER_ARGS, '--smtp-host', '127.0.0.1', '--smtp-port', String(smtp.port), '--smtp-secure', 'none', '--smtp-from', 'spiderplane@test.example',
    '--alert-to', OPS, '--public-url', 'http://ui.example', '--alert-group-seconds', '1', '--alert-group-wait', '0.2', '--mail-retry-min', '0.3', '--mail-retry-max', '1'];
  master = await startMaster({ dataDir: masterDir, args: masterArgs });
  slave = await startSlaveNode();
});

after(async () => {
  if (process.env.ALERTS_DEBUG) console.log(master?.output());
  for (const s of slaves) await s.stop().catch(() => undefined);
  await master?.stop().catch(() => undefined);
  await smtp?.stop();
});

describe('alerts with a real master, slave and SMTP server', () => {
  test('default rules, SMTP settings without the password, test mail, bad input refused, /metrics and charts', async () => {
    const rules = (await master.api<{ rules: Rule[] }>('GET', '/api/alerts/rules')).body.rules;
    assert.deepEqual(rules.map((r) => [r.kind, r.threshold, r.enabled]), [['node_offline', null, true], ['job_failed', null, true], ['disk', 90, true]]);

    const put = await master.api<{ smtp: Record<string, unknown> }>('PUT', '/api/alerts/smtp', { password: 's3cret-pw' });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const got = await master.api<{ smtp: Record<string, unknown> }>('GET', '/api/alerts/smtp');
    assert.equal(got.body.smtp.password_set, true);
    assert.ok(!JSON.stringify(got.body).includes('s3cret-pw'), 'the password is never shown');
    assert.equal(got.body.smtp.host, '127.0.0.1');
    assert.deepEqual(got.body.smtp.to, [OPS]);
    assert.equal((await master.api('PUT', '/api/alerts/smtp', { password: null })).status, 200);
    for (const [body, re] of [[{ port: 70000 }, /'port'/], [{ secure: 'ssl' }, /'secure'/], [{ to: ['nope'] }, /not an email address/], [{ from: 'a b c' }, /'from'/], [{ hostname: 'x' }, /unknown field/]] as const) {
      const r = await master.api<{ error: string }>('PUT', '/api/alerts/smtp', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match(r.body.error, re);
    }

    const t = await master.api<{ ok: boolean; response: string }>('POST', '/api/alerts/smtp/test', { to: ['tester@example.com'] });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    assert.equal(t.body.ok, true, JSON.stringify(t.body));
    assert.match(t.body.response, /^250/);
    assert.equal(mailsTo('tester@example.com').length, 1);
    assert.equal(mailsTo('tester@example.com')[0]!.subject, '[spiderplane] test mail');

    for (const [body, re] of [
      [{}, /'kind' is required/], [{ kind: 'cpu' }, /'threshold' is required/], [{ kind: 'cpu', threshold: 101 }, /from 0 to 100/],
      [{ kind: 'memory', threshold: 50, scope: 'node' }, /needs 'node'/], [{ kind: 'job_failed', recipients: ['x'] }, /not an email address/],
      [{ kind: 'disk', threshold: 90, duration_seconds: 1.5 }, /'duration_seconds'/],
    ] as const) {
      const r = await master.api<{ error: string }>('POST', '/api/alerts/rules', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match(r.body.error, re);
    }
    const notJson = await fetch(`${master.url}/api/alerts/rules`, { method: 'POST', body: '{', headers: { 'Content-Type': 'application/json', Authorization: basic('admin', 'admin-password-1') } });
    assert.equal(notJson.status, 400);
    assert.equal((await master.api('PUT', '/api/alerts/rules/9999', { threshold: 1 })).status, 404);
    // Roles: a viewer reads, cannot edit rules or SMTP.
    assert.equal((await master.api('POST', '/api/users', { username: 'vera', password: 'viewer-password-1', role: 'viewer' })).status, 201);
    const viewer = basic('vera', 'viewer-password-1');
    assert.equal((await master.api('GET', '/api/alerts/rules', undefined, viewer)).status, 200);
    assert.equal((await master.api('POST', '/api/alerts/rules', { kind: 'job_failed' }, viewer)).status, 403);
    assert.equal((await master.api('PUT', '/api/alerts/smtp', { host: 'evil.example' }, viewer)).status, 403);
    assert.equal((await master.api('GET', '/api/alerts/firings', undefined, 'Basic eDp5')).status, 401);

    // Prometheus text needs credentials.
    assert.equal((await fetch(`${master.url}/metrics`)).status, 401);
    // The slave's CPU figure needs two readings of /proc/stat: wait for a heartbeat that carries it.
    const text = await waitFor('a heartbeat with the node\'s CPU', async () => {
      const prom = await fetch(`${master.url}/metrics`, { headers: { Authorization: viewer } });
      assert.equal(prom.status, 200);
      const body = await prom.text();
      return /^spiderplane_node_cpu_percent\{node="crawl-1"\} /m.test(body) ? body : undefined;
    }, 60_000);
    assert.match(text, /^spiderplane_node_up\{node="crawl-1"\} 1$/m);
    assert.match(text, /^# TYPE spiderplane_node_cpu_percent gauge$/m);
    // Chart data.
    // Samples are written once a second: wait for the first to be in.
    const chart = await waitFor('chart points', async () => {
      const c = await master.api<{ points: Array<{ t: number; cpu: number | null }>; step_seconds: number }>('GET', '/api/nodes/crawl-1/metrics?range=1h');
      assert.equal(c.status, 200);
      return c.body.points.length > 0 ? c : undefined;
    }, 60_000);
    assert.ok(chart.body.points.length > 0);
    assert.equal((await master.api('GET', '/api/nodes/crawl-1/metrics?range=2y')).status, 400);
    assert.equal((await master.api('GET', '/api/metrics/cluster?range=24h')).status, 200);
  });

  test('CPU over the threshold for the duration: one mail, none while it stays over', async () => {
    const rule = await createRule({ kind: 'cpu', threshold: 0, duration_seconds: 1, scope: 'node', node: 'crawl-1', recipients: ['cpu@example.com'] });
    await waitCount('cpu@example.com', 'FIRING: node crawl-1 CPU over 0 %');
    await sleep(2000); // several heartbeat rounds and group windows while it stays over
    assert.equal(count('cpu@example.com', 'FIRING: node crawl-1 CPU over 0 %'), 1);
    const m = mailsTo('cpu@example.com')[0]!;
    assert.equal(m.subject, '[spiderplane] node crawl-1 CPU over 0 %');
    assert.match(m.text, /figure: +[\d.]+ %/);
    assert.match(m.text, /threshold: +0 %/);
    assert.match(m.text, /link: +http:\/\/ui\.example\/nodes\/crawl-1/);
    assert.match(m.html, /<a href="http:\/\/ui\.example\/nodes\/crawl-1">/);
    const firings = (await master.api<{ firings: Array<{ rule_id: number; state: string; value: number; threshold: number }> }>('GET', '/api/alerts/firings?state=firing')).body.firings;
    const f = firings.find((x) => x.rule_id === rule.id)!;
    assert.equal(f.threshold, 0);
    assert.ok(f.value > 0);
    // Disabling closes it without a recovery mail.
    assert.equal((await master.api('POST', `/api/alerts/rules/${rule.id}/disable`)).status, 200);
    await sleep(1500);
    assert.equal(mailsTo('cpu@example.com').length, 1);
  });

  test('a crashing spider: one job-failed mail with its error lines', async () => {
    await deployNodePackage(master, tempDir('spiderplane-alerts-pkg-'));
    const run = await master.api<{ runs: Array<{ job: string }> }>('POST', '/api/runs', { project: 'gen', spider: 'crash' });
    assert.equal(run.status, 201, JSON.stringify(run.body));
    const job = run.body.runs[0]!.job;
    await waitCount(OPS, 'FIRING: job gen/crash failed');
    const m = mailsTo(OPS).find((x) => x.text.includes('FIRING: job gen/crash failed'))!;
    assert.match(m.subject, /job gen\/crash failed/);
    assert.match(m.text, /boom from crash spider/);
    assert.match(m.text, /exit code 1/);
    assert.ok(m.text.includes(`http://ui.example/jobs/${job}`));
    assert.match(m.html, /boom from crash spider/);
    // A second failure of the same spider while it is still failing: no new mail.
    const again = await master.api<{ runs: Array<{ job: string }> }>('POST', '/api/runs', { project: 'gen', spider: 'crash' });
    await waitFor('second crash finished', async () => {
      const r = await master.api<{ run: { state: string } }>('GET', `/api/runs/${again.body.runs[0]!.job}`);
      return r.body.run.state === 'finished' ? true : undefined;
    }, 60_000, 200);
    await sleep(1500);
    assert.equal(count(OPS, 'FIRING: job gen/crash failed'), 1);
  });

  test('a node stopped: one offline mail; back: one recovery mail', async () => {
    await slave.stop();
    slaves.delete(slave);
    await waitCount(OPS, 'FIRING: node crawl-1 offline');
    const m = mailsTo(OPS).find((x) => x.text.includes('FIRING: node crawl-1 offline'))!;
    assert.match(m.subject, /^\[spiderplane\] (node crawl-1 offline|.*node crawl-1 offline.*)$/);
    assert.match(m.text, /since: +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/);
    slave = await startSlaveNode();
    await waitCount(OPS, 'RESOLVED: node crawl-1 offline');
    await sleep(1500);
    assert.equal(count(OPS, 'FIRING: node crawl-1 offline'), 1);
    assert.equal(count(OPS, 'RESOLVED: node crawl-1 offline'), 1);
    const rec = mailsTo(OPS).find((x) => x.text.includes('RESOLVED: node crawl-1 offline'))!;
    assert.match(rec.subject, /resolved: node crawl-1 offline/);
  });

  test('SMTP down while an alert fires: queued, retried, delivered once when SMTP is back', async () => {
    await smtp.stop();
    await createRule({ kind: 'memory', threshold: 0, scope: 'node', node: 'crawl-1', recipients: ['mem@example.com'] });
    const queued = await waitFor('a failed attempt', async () => {
      const r = await master.api<{ mails: Mail[] }>('GET', '/api/alerts/outbox');
      const mail = r.body.mails.find((x) => x.to === 'mem@example.com');
      return mail && mail.attempts >= 2 && mail.state !== 'sent' ? mail : undefined;
    }, 60_000, 100);
    assert.match(queued.last_error ?? '', /ECONNREFUSED/);
    await smtp.start();
    await waitCount('mem@example.com', 'FIRING: node crawl-1 memory over 0 %');
    await sleep(1500);
    assert.equal(mailsTo('mem@example.com').length, 1);
    const sent = (await master.api<{ mails: Mail[] }>('GET', '/api/alerts/outbox?state=sent')).body.mails.find((x) => x.to === 'mem@example.com');
    assert.ok(sent);
  });

  test('a master restart with the outbox full: delivered after the restart, nothing twice', async () => {
    await smtp.stop();
    await createRule({ kind: 'disk', threshold: 0, scope: 'node', node: 'crawl-1', recipients: ['restart@example.com'] });
    await createRule({ kind: 'memory', threshold: 0, recipients: ['restart@example.com'] });
    await waitFor('both alerts queued and tried', async () => {
      const r = await master.api<{ mails: Mail[] }>('GET', '/api/alerts/outbox');
      const mine = r.body.mails.filter((x) => x.to === 'restart@example.com');
      const notices = (await master.api<{ firings: Array<{ title: string }> }>('GET', '/api/alerts/firings?state=firing')).body.firings;
      const both = notices.some((f) => f.title.includes('disk')) && notices.filter((f) => f.title.includes('memory')).length >= 2;
      return both && mine.length > 0 && mine.every((x) => x.attempts >= 1 && x.state === 'queued') ? true : undefined;
    }, 60_000, 100);
    await sleep(500); // let any remaining notice join the outbox
    assert.equal(await master.stop(), 0);
    await smtp.start();
    master = await startMaster({ dataDir: masterDir, args: masterArgs });
    await waitCount('restart@example.com', 'FIRING: node crawl-1 memory over 0 %');
    await waitCount('restart@example.com', 'FIRING: node crawl-1 disk (/) over 0 %').catch(async () => {
      // the fullest mount may not be '/': any disk firing will do
      await waitFor('disk mail', () => (mailsTo('restart@example.com').some((m) => /FIRING: node crawl-1 disk \(.*\) over 0 %/.test(m.text)) ? true : undefined));
    });
    // Everything queued has gone out (mails grouped for later are sent by timers: wait for them).
    const counts = await waitFor('the outbox drained', async () => {
      const c = (await master.api<{ counts: Record<string, number> }>('GET', '/api/alerts/outbox')).body.counts;
      return (c.queued ?? 0) === 0 && (c.sending ?? 0) === 0 ? c : undefined;
    }, 60_000, 200);
    await sleep(1000); // a duplicate would arrive right after
    const notices = mailsTo('restart@example.com').flatMap((m) => m.alerts);
    assert.ok(notices.length >= 2, JSON.stringify(notices));
    assert.equal(new Set(notices).size, notices.length, `a notice was mailed twice: ${JSON.stringify(notices)}`);
    // No duplicate anywhere: every notice reached each recipient once, every Message-ID is unique.
    for (const to of new Set(smtp.mails.flatMap((m) => m.to))) {
      const all = mailsTo(to).flatMap((m) => m.alerts);
      assert.equal(new Set(all).size, all.length, `${to}: ${JSON.stringify(all)}`);
    }
    const ids = smtp.mails.map((m) => m.messageId);
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual([counts.queued ?? 0, counts.sending ?? 0, counts.failed ?? 0], [0, 0, 0]);
  });
});

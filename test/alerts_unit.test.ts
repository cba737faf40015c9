// Alerts in one process: the rule engine, rule validation, grouping, the outbox against a real SMTP
// server on 127.0.0.1 (down, up, a mail left 'sending'), and metric roll-ups.
// Run: cd /work/main && npx tsx --test test/alerts_unit.test.ts
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openMasterDb } from '../master/db.ts';
import { NodeRegistry } from '../master/nodes/node_registry.ts';
import { RunStore } from '../master/runs/run_store.ts';
import { SqliteDb } from '../master/store/sqlite_db.ts';
import { AlertService } from '../master/alerts/alert_service.ts';
import { Outbox, OutboxSender } from '../master/alerts/outbox.ts';
import { composeAlertMail, type SmtpSettings } from '../master/alerts/mailer.ts';
import { parseRuleInput, type FiringRow } from '../master/alerts/rule_store.ts';
import { evaluateRun, RuleEngine, type AlertRule, type NodeSnapshot } from '../master/alerts/rule_engine.ts';
import { HttpError } from '../master/http/input.ts';
import { MetricHistory, MINUTE, HOUR } from '../master/metrics/metric_history.ts';
import { tempDir, waitFor } from './helpers/slave_process.ts';
import { startSmtp, type SmtpHandle } from './helpers/smtp.ts';

const rule = (over: Partial<AlertRule>): AlertRule => ({
  id: 1, name: 'r', kind: 'cpu', threshold: 50, duration_seconds: 10, scope: 'all', scope_node: null, scope_project: null, scope_spider: null,
  recipients: [], enabled: true, created_at: 0, updated_at: 0, ...over,
});
const node = (over: Partial<NodeSnapshot>): NodeSnapshot => ({ name: 'n1', status: 'online', statusSince: 0, cpu: 10, mem: 10, disk: { mount: '/', percent: 10 }, rx: 0, tx: 0, ...over });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const smtps: SmtpHandle[] = [];
after(async () => { for (const s of smtps) await s.stop(); });

describe('rule engine', () => {
  test('a metric must stay over its threshold for the duration; it fires once and recovers once', () => {
    const e = new RuleEngine();
    const rules = [rule({})];
    const open = new Map<number, Set<string>>();
    assert.equal(e.evaluateNodes(rules, [node({ cpu: 80 })], open, 1000).fire.length, 0, 'not held yet');
    assert.equal(e.evaluateNodes(rules, [node({ cpu: 80 })], open, 6000).fire.length, 0);
    const fired = e.evaluateNodes(rules, [node({ cpu: 90 })], open, 11_000);
    assert.equal(fired.fire.length, 1);
    assert.equal(fired.fire[0]!.since, 1000);
    assert.equal(fired.fire[0]!.title, 'node n1 CPU over 50 %');
    open.set(1, new Set(['node:n1']));
    assert.deepEqual(e.evaluateNodes(rules, [node({ cpu: 90 })], open, 12_000), { fire: [], resolve: [] }, 'stays firing: nothing');
    assert.equal(e.evaluateNodes(rules, [node({ status: 'offline', cpu: 5 })], open, 13_000).resolve.length, 0, 'no figure while offline: no change');
    const rec = e.evaluateNodes(rules, [node({ cpu: 20 })], open, 14_000);
    assert.equal(rec.resolve.length, 1);
    // A dip under the threshold restarts the duration.
    open.clear();
    e.evaluateNodes(rules, [node({ cpu: 80 })], open, 20_000);
    e.evaluateNodes(rules, [node({ cpu: 20 })], open, 25_000);
    assert.equal(e.evaluateNodes(rules, [node({ cpu: 80 })], open, 31_000).fire.length, 0);
  });

  test('node offline respects scope and duration; a removed node resolves', () => {
    const e = new RuleEngine();
    const rules = [rule({ kind: 'node_offline', threshold: null, duration_seconds: 5, scope: 'node', scope_node: 'n2' })];
    const nodes = [node({ name: 'n1', status: 'offline', statusSince: 0 }), node({ name: 'n2', status: 'offline', statusSince: 1000 })];
    assert.equal(e.evaluateNodes(rules, nodes, new Map(), 3000).fire.length, 0);
    const ev = e.evaluateNodes(rules, nodes, new Map(), 7000);
    assert.deepEqual(ev.fire.map((h) => h.subjectKey), ['node:n2']);
    assert.equal(ev.fire[0]!.link, '/nodes/n2');
    const gone = e.evaluateNodes(rules, [nodes[0]!], new Map([[1, new Set(['node:n2'])]]), 8000);
    assert.equal(gone.resolve.length, 1);
  });

  test('job rules fire per spider and recover on a good run', () => {
    const rules = [rule({ kind: 'job_failed', threshold: null, duration_seconds: 0 }), rule({ id: 2, kind: 'job_no_items', threshold: 0, duration_seconds: 0, scope: 'project', scope_project: 'p' })];
    const run = { job: 'j1', project: 'p', spider: 's', node: 'n1', outcome: 'failed', exit_code: 1, items_count: 0, error_count: 2, note: null, ended_at: 5 };
    const ev = evaluateRun(rules, run, new Map());
    assert.deepEqual(ev.fire.map((h) => [h.ruleId, h.subjectKey, h.title]), [[1, 'spider:p/s', 'job p/s failed'], [2, 'spider:p/s', 'job p/s scraped no items']]);
    const open = new Map([[1, new Set(['spider:p/s'])], [2, new Set(['spider:p/s'])]]);
    assert.equal(evaluateRun(rules, { ...run, job: 'j2' }, open).fire.length, 0, 'still failing: no new firing');
    assert.equal(evaluateRun(rules, { ...run, outcome: 'cancelled', items_count: null }, open).resolve.length, 0, 'a cancelled run says nothing');
    assert.equal(evaluateRun(rules, { ...run, outcome: 'succeeded', exit_code: 0, items_count: 3 }, open).resolve.length, 2);
  });
});

describe('rule input', () => {
  const refuses = (body: Record<string, unknown>, re: RegExp) => {
    assert.throws(() => parseRuleInput(body), (e: unknown) => e instanceof HttpError && e.status === 400 && re.test(e.message), JSON.stringify(body));
  };
  test('bad rules are refused with a message that names the field', () => {
    refuses({}, /'kind' is required/);
    refuses({ kind: 'cpu_hot' }, /'kind' must be one of/);
    refuses({ kind: 'cpu' }, /'threshold' is required for cpu/);
    refuses({ kind: 'cpu', threshold: 150 }, /percentage: from 0 to 100/);
    refuses({ kind: 'cpu', threshold: '90' }, /'threshold' must be a number/);
    refuses({ kind: 'cpu', threshold: 90, duration_seconds: -1 }, /'duration_seconds'/);
    refuses({ kind: 'cpu', threshold: 90, scope: 'project', project: 'p' }, /does not apply to cpu/);
    refuses({ kind: 'cpu', threshold: 90, scope: 'node' }, /needs 'node'/);
    refuses({ kind: 'node_offline', threshold: 3 }, /does not apply to node_offline/);
    refuses({ kind: 'job_failed', duration_seconds: 60 }, /does not apply to job_failed/);
    refuses({ kind: 'job_failed', scope: 'spider', project: 'p' }, /needs 'spider'/);
    refuses({ kind: 'job_failed', scope: 'project', project: '../x' }, /'project'/);
    refuses({ kind: 'job_errors', threshold: 1.5 }, /whole number/);
    refuses({ kind: 'job_too_long', threshold: 0 }, /more than 0/);
    refuses({ kind: 'job_failed', recipients: ['ops@example.com', 'not an address'] }, /not an email address/);
    refuses({ kind: 'job_failed', recipients: 'a@b.c\r\nBcc: x@y.z' }, /not an email address/);
    refuses({ kind: 'job_failed', enabled: 'yes' }, /'enabled' must be true or false/);
    refuses({ kind: 'job_failed', colour: 'red' }, /unknown field 'colour'/);
  });
  test('a partial edit keeps the other fields', () => {
    const r = parseRuleInput({ kind: 'disk', threshold: 80, duration_seconds: 30, scope: 'node', node: 'n1', recipients: ['a@example.com'] });
    assert.equal(r.name, 'Disk over 80 % for 30 s (n1)');
    const edited = parseRuleInput({ threshold: 95 }, { ...r, id: 1, created_at: 0, updated_at: 0 });
    assert.deepEqual({ ...edited, name: '' }, { ...r, threshold: 95, name: '' });
  });
});

describe('mail text', () => {
  test('subject, plain text and escaped HTML', () => {
    const f: FiringRow = {
      id: 7, rule_id: 1, rule_name: 'CPU <hot>', kind: 'cpu', subject_key: 'node:crawl-3', title: 'node crawl-3 CPU over 90 %', link: '/nodes/crawl-3', state: 'firing',
      value: 97.25, threshold: 90, since: Date.parse('2024-05-01T10:00:00Z'), fired_at: 0, resolved_at: null, detail: 'x <script>alert(1)</script>', resolve_detail: null,
    };
    const m = composeAlertMail([{ event: 'fire', firing: f }], 'https://sp.example.com/', Date.parse('2024-05-01T10:05:00Z'));
    assert.equal(m.subject, '[spiderplane] node crawl-3 CPU over 90 %');
    assert.match(m.text, /figure: +97\.3 %/);
    assert.match(m.text, /threshold: +90 %/);
    assert.match(m.text, /since: +2024-05-01 10:00:00 UTC \(5 min ago\)/);
    assert.match(m.text, /link: +https:\/\/sp\.example\.com\/nodes\/crawl-3/);
    assert.ok(m.html.includes('CPU &lt;hot&gt;') && m.html.includes('&lt;script&gt;') && !m.html.includes('<script>'));
    assert.equal(m.headers['X-Spiderplane-Alerts'], 'fire:7');
    const two = composeAlertMail([{ event: 'fire', firing: f }, { event: 'resolve', firing: { ...f, id: 8, title: 'node crawl-4 offline' } }], 'http://x');
    assert.equal(two.subject, '[spiderplane] 1 firing, 1 resolved: node crawl-3 CPU over 90 %; resolved: node crawl-4 offline');
  });
});

function smtpSettings(port: number, to: string[] = []): SmtpSettings {
  return { host: '127.0.0.1', port, secure: 'none', user: null, password: null, from: 'spiderplane@test.example', to };
}

describe('outbox and grouping against a real SMTP server', () => {
  test('many firings at once: one mail per recipient; recoveries grouped too; nothing twice', async () => {
    const smtp = await startSmtp();
    smtps.push(smtp);
    const db = openMasterDb(tempDir('spiderplane-alerts-unit-'));
    const sql = new SqliteDb(db);
    const nodes = new NodeRegistry(sql);
    const svc = new AlertService(sql, nodes, new RunStore(sql), async () => null, {
      flags: smtpSettings(smtp.port, ['ops@example.com', 'oncall@example.com']), publicUrl: () => 'http://ui.example', groupMs: 400, groupWaitMs: 100,
      retryMinMs: 50, retryMaxMs: 200, evalIntervalMs: 60_000, rawRetentionMs: HOUR,
    });
    try {
      await svc.start();
      assert.deepEqual((await svc.rules.all()).map((r) => r.kind), ['node_offline', 'job_failed', 'disk'], 'default rules');
      const ns = [];
      for (const n of ['a', 'b', 'c']) ns.push(await nodes.add({ name: `crawl-${n}`, url: `http://${n}.test:6800`, username: null, password: null, source: 'added', max_proc: 1 }));
      for (const n of ns) await nodes.setStatus(n, 'offline', 'test', Date.now());
      await svc.evaluateRound();
      await svc.evaluateRound(); // still offline: nothing new
      await waitFor('2 mails', () => (smtp.mails.length >= 2 ? true : undefined), 10_000, 20);
      for (const n of ns) await nodes.setStatus(n, 'online', 'test', Date.now());
      await svc.evaluateRound();
      await waitFor('4 mails', () => (smtp.mails.length >= 4 ? true : undefined), 10_000, 20);
      await sleep(600);
      assert.equal(smtp.mails.length, 4);
      const byTo = (to: string) => smtp.mails.filter((m) => m.to.join() === to);
      for (const to of ['ops@example.com', 'oncall@example.com']) {
        const [fire, resolve] = byTo(to);
        assert.equal(fire!.alerts.length, 3);
        assert.ok(fire!.alerts.every((a) => a.startsWith('fire:')));
        assert.match(fire!.subject, /^\[spiderplane\] 3 firing: node crawl-a offline; node crawl-b offline; node crawl-c offline$/);
        assert.equal(resolve!.alerts.length, 3);
        assert.ok(resolve!.alerts.every((a) => a.startsWith('resolve:')));
        assert.match(resolve!.text, /RESOLVED: node crawl-b offline[\s\S]*link: +http:\/\/ui\.example\/nodes\/crawl-b/);
      }
      assert.equal(new Set(smtp.mails.map((m) => m.messageId)).size, 4);
      assert.deepEqual(await svc.firings.counts(), { firing: 0, resolved: 3 });
    } finally {
      await svc.stop();
      db.close();
    }
  });

  test('SMTP down: queued and retried with backoff, delivered once when it returns; a mail left sending is sent again once', async () => {
    const smtp = await startSmtp();
    smtps.push(smtp);
    await smtp.stop();
    const db = openMasterDb(tempDir('spiderplane-outbox-unit-'));
    const outbox = new Outbox(new SqliteDb(db));
    const sender = new OutboxSender(outbox, () => smtpSettings(smtp.port), { retryMinMs: 50, retryMaxMs: 200, pollMs: 25 });
    try {
      const id = await outbox.enqueue({ to: 'ops@example.com', subject: 'down then up', text: 'hello', html: '<p>hello</p>', headers: {} });
      sender.start();
      const row = await waitFor('two failed attempts', async () => { const r = (await outbox.get(id))!; return r.attempts >= 2 ? r : undefined; }, 10_000, 20);
      assert.equal(row.state === 'queued' || row.state === 'sending', true);
      assert.match((await outbox.get(id))!.last_error ?? '', /ECONNREFUSED/);
      assert.equal(sender.backoff(1), 50);
      assert.equal(sender.backoff(3), 200);
      assert.equal(sender.backoff(30), 200);
      await smtp.start();
      await waitFor('sent', async () => ((await outbox.get(id))!.state === 'sent' ? true : undefined), 10_000, 20);
      assert.match((await outbox.get(id))!.smtp_response ?? '', /^250/);
      // A crash after the claim: the row is 'sending' at the next start and goes out again, once.
      await sender.stop();
      const id2 = await outbox.enqueue({ to: 'ops@example.com', subject: 'in flight', text: 'x', html: 'x', headers: {} });
      assert.equal((await outbox.claimDue())!.id, id2);
      assert.equal(await outbox.claimDue(), undefined, 'claimed once');
      assert.equal(await new Outbox(new SqliteDb(db)).recoverInFlight(), 1);
      const again = new OutboxSender(outbox, () => smtpSettings(smtp.port), { retryMinMs: 50, retryMaxMs: 200, pollMs: 25 });
      again.start();
      await waitFor('sent', async () => ((await outbox.get(id2))!.state === 'sent' ? true : undefined), 10_000, 20);
      await sleep(200);
      await again.stop();
      assert.deepEqual(smtp.mails.map((m) => m.subject), ['down then up', 'in flight']);
    } finally {
      await sender.stop();
      db.close();
    }
  });
});

describe('metric history', () => {
  test('raw samples roll up to minutes and hours; charts read the right tier', async () => {
    const db = openMasterDb(tempDir('spiderplane-metrics-unit-'));
    const sql = new SqliteDb(db);
    const nodes = new NodeRegistry(sql);
    const n = await nodes.add({ name: 'm1', url: 'http://m1.test:6800', username: null, password: null, source: 'added', max_proc: 1 });
    const h = new MetricHistory(sql, 48 * HOUR);
    const now = Math.floor(Date.now() / HOUR) * HOUR + 30 * MINUTE;
    const start = now - 3 * HOUR;
    const ins = db.prepare(`INSERT INTO node_metrics (node_id, time, cpu_percent, load1, mem_percent, disk, rx_bps, tx_bps, running, pending) VALUES (?, ?, ?, 1, 50, ?, 100, 200, 1, 0)`);
    for (let t = start; t < now; t += 5000) ins.run(n.id, t, (t / 5000) % 2 ? 10 : 30, JSON.stringify([{ mount: '/', used_percent: 40 }, { mount: '/data', used_percent: 70 }]));
    await h.rollup(now);
    const minutes = (db.prepare(`SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ?`).get(MINUTE) as { c: number }).c;
    const hours = (db.prepare(`SELECT COUNT(*) AS c FROM metric_rollups WHERE res = ?`).get(HOUR) as { c: number }).c;
    assert.equal(minutes, 180);
    assert.equal(hours, 3, 'the complete hours');
    await h.rollup(now); // idempotent
    assert.equal((db.prepare(`SELECT SUM(n) AS s FROM metric_rollups WHERE res = ?`).get(MINUTE) as { s: number }).s, 3 * 720);
    const day = await h.nodeSeries(n.id, '24h', now);
    assert.equal(day.step_seconds, 60);
    assert.equal(day.points.length, 180);
    assert.deepEqual([day.points[0]!.cpu, day.points[0]!.cpu_max, day.points[0]!.disk, day.points[0]!.rx], [20, 30, 70, 100]);
    const month = await h.nodeSeries(n.id, '30d', now);
    assert.equal(month.points.length, 3);
    assert.equal(month.points[0]!.cpu, 20);
    const raw = await h.nodeSeries(n.id, '1h', now);
    assert.equal(raw.points.length, 720);
    const cluster = await h.clusterSeries('24h', now);
    assert.equal(cluster.points[0]!.nodes, 1);
    assert.equal(cluster.points[0]!.rx, 100);
    await h.prune(now + 60 * 24 * HOUR);
    assert.equal((db.prepare(`SELECT COUNT(*) AS c FROM metric_rollups WHERE res < ?`).get(24 * HOUR) as { c: number }).c, 0, 'minutes and hours expired; days are kept for a year');
    db.close();
  });
});

// 'finished_with_errors': the slave's judgement of a run that exited 0 (slave/jobs/outcome.ts) and
// the alert rule kind that counts it (master/alerts/rule_engine.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeOutcome, type RunEvidence } from '../slave/jobs/outcome.ts';
import { evaluateRun, type AlertRule, type RunFacts } from '../master/alerts/rule_engine.ts';
import { parseRuleInput } from '../master/alerts/rule_store.ts';

const clean: RunEvidence = { errorCount: 0, scrapyErrorCount: null, finishReason: null, items: 3, previousItems: 3 };

test('exit 0 with nothing wrong is succeeded; other exit outcomes are never touched', () => {
  assert.deepEqual(judgeOutcome('succeeded', clean), { outcome: 'succeeded', why: null });
  assert.deepEqual(judgeOutcome('succeeded', { ...clean, finishReason: 'finished' }), { outcome: 'succeeded', why: null });
  assert.deepEqual(judgeOutcome('succeeded', { ...clean, finishReason: 'N/A', items: null, previousItems: null }), { outcome: 'succeeded', why: null });
  for (const o of ['failed', 'cancelled', 'lost', 'unknown'] as const) {
    assert.deepEqual(judgeOutcome(o, { ...clean, errorCount: 5, finishReason: 'shutdown', items: 0 }), { outcome: o, why: null });
  }
});

test('errors logged, a finish reason other than finished, or no items after a run with items: finished_with_errors', () => {
  assert.deepEqual(judgeOutcome('succeeded', { ...clean, errorCount: 1 }), { outcome: 'finished_with_errors', why: 'finished with errors: 1 error logged' });
  // Scrapy's own count wins when it saw more (a log level that hides some lines from the file).
  assert.equal(judgeOutcome('succeeded', { ...clean, errorCount: 1, scrapyErrorCount: 4 }).why, 'finished with errors: 4 errors logged');
  assert.equal(judgeOutcome('succeeded', { ...clean, finishReason: 'closespider_timeout' }).why, "finished with errors: Scrapy's finish reason is 'closespider_timeout'");
  assert.equal(judgeOutcome('succeeded', { ...clean, items: null, previousItems: 12 }).why, 'finished with errors: no items, where the previous run scraped 12');
  assert.equal(judgeOutcome('succeeded', { ...clean, items: 0, previousItems: 0 }).outcome, 'succeeded', 'a spider that never scrapes anything is fine with 0');
  assert.equal(judgeOutcome('succeeded', { errorCount: 2, scrapyErrorCount: 2, finishReason: 'memusage_exceeded', items: 0, previousItems: 7 }).why,
    "finished with errors: 2 errors logged; Scrapy's finish reason is 'memusage_exceeded'; no items, where the previous run scraped 7");
});

const rule = (over: Partial<AlertRule>): AlertRule => ({
  id: 1, name: 'r', kind: 'job_finished_with_errors', threshold: null, duration_seconds: 0, scope: 'all', scope_node: null, scope_project: null, scope_spider: null,
  recipients: [], enabled: true, created_at: 0, updated_at: 0, ...over,
});
const run = (over: Partial<RunFacts>): RunFacts => ({ job: 'j1', project: 'p', spider: 's', node: 'n1', outcome: 'finished_with_errors', exit_code: 0, items_count: 0, error_count: 2, note: 'finished with errors: 2 errors logged', ended_at: 5, ...over });

test('alert rule job_finished_with_errors fires on that outcome, recovers on a clean run; job_failed does not count it as a failure', () => {
  const rules = [rule({}), rule({ id: 2, kind: 'job_failed' }), rule({ id: 3, kind: 'job_no_items', threshold: 0 })];
  const ev = evaluateRun(rules, run({}), new Map());
  assert.deepEqual(ev.fire.map((h) => [h.ruleId, h.title]), [[1, 'job p/s finished with errors'], [3, 'job p/s scraped no items']]);
  assert.match(ev.fire[0]!.detail ?? '', /2 errors logged on n1/);
  const open = new Map([[1, new Set(['spider:p/s'])], [2, new Set(['spider:p/s'])]]);
  const again = evaluateRun(rules, run({ job: 'j2', items_count: 3 }), open);
  assert.equal(again.fire.length, 0);
  assert.deepEqual(again.resolve.map((r) => r.ruleId), [2], 'exit 0 ends a job_failed firing');
  assert.deepEqual(evaluateRun(rules, run({ outcome: 'succeeded', items_count: 3, error_count: 0 }), open).resolve.map((r) => r.ruleId), [1, 2]);
  assert.equal(evaluateRun(rules, run({ outcome: 'failed', exit_code: 1 }), new Map()).fire.some((h) => h.ruleId === 1), false);
  assert.equal(parseRuleInput({ kind: 'job_finished_with_errors', scope: 'spider', project: 'p', spider: 's' }).name, 'Job finished with errors (p/s)');
});

// One Scrapyd protocol (common/http/scrapyd_params.ts): the slave's API and the master's facade
// refuse the same bad schedule.json inputs with the same messages. One table, run against both.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, basic, CLUSTER_TOKEN, startMaster, type MasterHandle } from './helpers/master_process.ts';
import { deployNodePackage, FAST_MASTER_ARGS, joinSlave } from './helpers/master_slave_pair.ts';
import { getJson, postForm, tempDir, type SlaveHandle } from './helpers/slave_process.ts';
import { addSettingCheck, decodeSchedule, encodeSchedule, parseSettings } from '../common/http/scrapyd_params.ts';
import { parseListJobs, ResponseShapeError } from '../common/http/scrapyd_responses.ts';

const OK = { project: 'gen', spider: 'hello' };

/** [what, form pairs, the message both must answer]. */
const BAD_SCHEDULES: Array<[string, Array<[string, string]>, string]> = [
  ['no project', [['spider', 'hello']], "'project' parameter is required"],
  ['no spider', [['project', 'gen']], "'spider' parameter is required"],
  ['project escapes its folder', [['project', '../etc'], ['spider', 'hello']], "project '../etc' is invalid: it must not contain '/' or '\\'"],
  ['spider with NUL', [['project', 'gen'], ['spider', 'he\0llo']], "spider 'he\0llo' is invalid: it must not contain NUL"],
  ['jobid ..', [...Object.entries(OK), ['jobid', '..']], "jobid '..' is invalid: it must not be '.' or contain '..'"],
  ['jobid as an option', [...Object.entries(OK), ['jobid', '-rf']], "jobid '-rf' is invalid: it must not start with '-'"],
  ['priority not a number', [...Object.entries(OK), ['priority', 'high']], "priority is invalid: could not convert string to float: b'high'"],
  ['setting without =', [...Object.entries(OK), ['setting', 'DOWNLOAD_DELAY']], "setting 'DOWNLOAD_DELAY' is invalid: expected NAME=VALUE"],
  ['setting without name', [...Object.entries(OK), ['setting', '=1']], "setting '=1' is invalid: expected NAME=VALUE"],
  ['setting name with a space', [...Object.entries(OK), ['setting', 'A B=1']], "setting 'A B' is invalid: its name must not contain NUL or whitespace"],
  ['argument name with =', [...Object.entries(OK), ['a=b', '1']], "spider argument name 'a=b' is invalid"],
  ['argument name with NUL', [...Object.entries(OK), ['a\0b', '1']], "spider argument name 'a\0b' is invalid"],
  ['argument value with NUL', [...Object.entries(OK), ['a', 'x\0y']], "spider argument 'a' is invalid: its value must not contain NUL"],
  ['empty argument name', [...Object.entries(OK), ['', '1']], "spider argument name '' is invalid"],
];

describe('schedule.json: slave and master refuse the same inputs the same way', () => {
  let master: MasterHandle;
  let slave: SlaveHandle;
  const admin = { Authorization: basic(ADMIN.user, ADMIN.password) };

  before(async () => {
    master = await startMaster({ args: FAST_MASTER_ARGS });
    slave = await joinSlave(master, 'n1');
    await deployNodePackage(master, tempDir());
  });

  after(async () => {
    await slave?.stop();
    await master?.stop();
  });

  for (const [what, pairs, message] of BAD_SCHEDULES) {
    test(what, async () => {
      const fromSlave = await postForm(slave.url, '/schedule.json', pairs, { Authorization: `Bearer ${CLUSTER_TOKEN}` });
      const fromMaster = await postForm(master.url, '/schedule.json', pairs, admin);
      assert.equal(fromSlave.status, 'error', JSON.stringify(fromSlave));
      assert.equal(fromMaster.status, 'error', JSON.stringify(fromMaster));
      assert.equal(fromSlave.message, message);
      assert.equal(fromMaster.message, message);
    });
  }

  test('the good request is taken by both (the table above is not refused for another reason)', async () => {
    const s = await postForm(slave.url, '/schedule.json', [...Object.entries(OK), ['setting', 'X=1'], ['arg', 'v']], { Authorization: `Bearer ${CLUSTER_TOKEN}` });
    assert.equal(s.status, 'ok', JSON.stringify(s));
    const m = await postForm(master.url, '/schedule.json', [...Object.entries(OK), ['setting', 'X=1'], ['arg', 'v']], admin);
    assert.equal(m.status, 'ok', JSON.stringify(m));
    const l = await getJson(slave.url, '/listjobs.json', {}, { Authorization: `Bearer ${CLUSTER_TOKEN}` });
    assert.equal(l.status, 'ok');
  });
});

describe('protocol module (in-process)', () => {
  const src = (pairs: Array<[string, string]>) => {
    const map = new Map<string, string[]>();
    for (const [k, v] of pairs) map.set(k, [...(map.get(k) ?? []), v]);
    return { get: (n: string) => map.get(n)?.[0], getAll: (n: string) => map.get(n) ?? [], names: () => [...map.keys()] };
  };

  test('encodeSchedule is decodeSchedule read backwards', () => {
    const req = { project: 'p', spider: 's', version: '1_0', jobid: 'j1', priority: 2.5, settings: { A: '1', B: 'x=y' }, args: { foo: 'bar' } };
    assert.deepEqual(JSON.parse(JSON.stringify(decodeSchedule(src(encodeSchedule(req))))), req); // args/settings have no prototype
    assert.throws(() => encodeSchedule({ ...req, args: { setting: 'x' } }), /reserved/);
  });

  test('a registered setting check runs on every schedule', () => {
    addSettingCheck((name, value) => (name === 'FORBIDDEN_FOR_TEST' ? `'${value}' is not allowed here` : null));
    assert.throws(() => parseSettings(['FORBIDDEN_FOR_TEST=/etc']), /setting 'FORBIDDEN_FOR_TEST' is invalid: '\/etc' is not allowed here/);
    assert.deepEqual({ ...parseSettings(['OTHER=1']) }, { OTHER: '1' });
    assert.deepEqual(Object.keys(parseSettings(['__proto__=1'])), ['__proto__'], 'a setting named __proto__ is kept as a name');
  });

  test("a node's listjobs.json is validated, not cast", () => {
    const good = { pending: [], running: [{ id: 'a', project: 'p', spider: 's', pid: 12, start_time: '2026-01-01 00:00:00.000000', log_url: '/logs/p/s/a.log', items_url: null }], finished: [] };
    assert.equal(parseListJobs(good).running[0]!.pid, 12);
    assert.throws(() => parseListJobs({ ...good, running: [{ ...good.running[0], pid: '12' }] }), (e: Error) => e instanceof ResponseShapeError && /running\[0\]\.pid is not a number/.test(e.message));
    assert.throws(() => parseListJobs({ pending: [], running: [] }), /finished is not a list/);
    // Older Scrapyd: no log_url/items_url.
    assert.equal(parseListJobs({ pending: [], running: [], finished: [{ id: 'a', project: 'p', spider: 's', start_time: 'x', end_time: 'y' }] }).finished[0]!.log_url, null);
  });
});

// Names users choose are names, whatever they spell: C1 control characters are refused like the
// other controls (as safe_zip refuses them in entry names), and '__proto__' or 'constructor' as a
// spider, argument or setting name is kept, listed and used as itself — on a real slave and master.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { nameProblem } from '../common/names.ts';
import { Params } from '../common/http/request_params.ts';
import { parseManifest } from '../common/packages/manifest.ts';
import { kvRows } from '../master/web/forms.ts';
import { parseSettings, spiderArgs } from '../slave/http/scrapyd_api.ts';
import { startSlave, waitForState, type SlaveHandle } from './helpers/slave_process.ts';
import { startMaster, type MasterHandle } from './helpers/master_process.ts';
import { rawZip } from './helpers/raw_zip.ts';

const TRICKY = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];

/** A generic package whose spiders are the tricky names; each prints its argv and SPIDERPLANE_ARGS. */
function trickyPackage(): Buffer {
  const spiders = Object.fromEntries(TRICKY.map((n) => [n, { command: ['node', 'echo.js'] }]));
  return rawZip([
    { name: 'spiderplane.json', content: Buffer.from(JSON.stringify({ spiders })) },
    { name: 'echo.js', content: Buffer.from("console.log('ARGV ' + JSON.stringify(process.argv.slice(2)));\nconsole.log('ARGS ' + process.env.SPIDERPLANE_ARGS);\n") },
    { name: 'package.json', content: Buffer.from('{"type": "commonjs"}') },
  ]);
}

describe('in process', () => {
  test('C1 control characters (U+0080–U+009F) are refused in names, as C0 and DEL are', () => {
    for (const c of ['\u0080', '\u0085', '\u009b', '\u009f', '\u001b', '\u007f']) {
      assert.equal(nameProblem(`a${c}b`), 'must not contain control characters', JSON.stringify(c));
    }
    assert.equal(nameProblem('caf\u00e9'), null, 'U+00E9 is a letter');
  });

  test('manifest, form rows, spider arguments and settings keep tricky names as themselves', () => {
    const manifest = parseManifest(JSON.stringify({ spiders: Object.fromEntries(TRICKY.map((n) => [n, { command: ['x'] }])) }));
    assert.deepEqual(Object.keys(manifest.spiders).sort(), [...TRICKY].sort());
    assert.deepEqual(manifest.spiders.__proto__?.command, ['x']);

    const entries: Array<[string, string[]]> = [
      ...TRICKY.map((n): [string, string[]] => [n, ['v-' + n]]),
      ['setting', TRICKY.map((n) => `${n}=s-${n}`)], ['args_key', TRICKY], ['args_value', TRICKY.map((n) => 'r-' + n)],
    ];
    const params = new Params(new Map(entries), new Map());
    const args = spiderArgs(params);
    for (const n of TRICKY) assert.equal(Object.hasOwn(args, n) && args[n], 'v-' + n, `argument ${n}`);
    const settings = parseSettings(params.getAll('setting'));
    assert.deepEqual(Object.entries(settings).sort(), TRICKY.map((n) => [n, 's-' + n]).sort());
    const rows = kvRows(params, 'args');
    assert.deepEqual(Object.entries(rows).sort(), TRICKY.map((n) => [n, 'r-' + n]).sort());
    assert.equal(JSON.parse(JSON.stringify(rows)).__proto__, 'r-__proto__', 'survives JSON as the run records store it');
  });
});

describe('slave', () => {
  let slave: SlaveHandle;
  before(async () => { slave = await startSlave(); });
  after(async () => { await slave?.stop(); });

  test("spiders named '__proto__', 'constructor', … are deployed, listed and run with arguments of such names", async () => {
    const form = new FormData();
    form.set('project', 'tricky');
    form.set('version', '1');
    form.set('egg', new Blob([new Uint8Array(trickyPackage())]), 'tricky.zip');
    const up = (await (await fetch(`${slave.url}/addversion.json`, { method: 'POST', body: form })).json()) as { status: string; spiders: number };
    assert.equal(up.status, 'ok', JSON.stringify(up));
    assert.equal(up.spiders, TRICKY.length);
    const listed = (await (await fetch(`${slave.url}/listspiders.json?project=tricky`)).json()) as { spiders: string[] };
    assert.deepEqual([...listed.spiders].sort(), [...TRICKY].sort());

    const body = new URLSearchParams([['project', 'tricky'], ['spider', '__proto__'], ['jobid', 'proto-job'], ['__proto__', 'a1'], ['constructor', 'a2'], ['setting', 'constructor=s1']]);
    const sched = (await (await fetch(`${slave.url}/schedule.json`, { method: 'POST', body })).json()) as { status: string; jobid: string };
    assert.equal(sched.status, 'ok', JSON.stringify(sched));
    await waitForState(slave.url, 'proto-job', 'finished', 60_000);
    const log = await (await fetch(`${slave.url}/logs/tricky/__proto__/proto-job.log`)).text();
    assert.match(log, /ARGV \["--__proto__=a1","--constructor=a2"\]/, log);
    assert.deepEqual(JSON.parse(/ARGS (.*)/.exec(log)![1]!), { ['__proto__']: 'a1', constructor: 'a2' });
  });
  test('a job id with a C1 control character is refused', async () => {
    const r = await fetch(`${slave.url}/schedule.json`, { method: 'POST', body: new URLSearchParams({ project: 'tricky', spider: 'constructor', jobid: 'a\u0085b' }) });
    const j = (await r.json()) as { status: string; message: string };
    assert.equal(j.status, 'error');
    assert.match(j.message, /must not contain control characters/);
  });
});

describe('master', () => {
  let master: MasterHandle;
  before(async () => { master = await startMaster(); });
  after(async () => { await master?.stop(); });

  test("a package with spiders named '__proto__' and 'constructor' lists them; schedule arguments of such names are kept", async () => {
    const form = new FormData();
    form.set('version', '1');
    form.set('egg', new Blob([new Uint8Array(trickyPackage())]), 'tricky.zip');
    const up = await fetch(`${master.url}/api/projects/tricky/versions`, { method: 'POST', body: form, headers: { Authorization: 'Basic ' + Buffer.from('admin:admin-password-1').toString('base64') } });
    assert.equal(up.status, 201, await up.text());
    const projects = await master.api<{ projects: Array<{ project: string; versions: Array<{ spiders: string[] | null }> }> }>('GET', '/api/projects');
    const spiders = projects.body.projects.find((p) => p.project === 'tricky')!.versions[0]!.spiders!;
    assert.deepEqual([...spiders].sort(), [...TRICKY].sort());

    const created = await master.api<{ schedule: { id: number; args: Record<string, string>; settings: Record<string, string> } }>('POST', '/api/schedules', {
      cron: '0 3 * * *', project: 'tricky', spider: 'constructor', enabled: false,
      args: JSON.parse('{"__proto__": "a1", "constructor": "a2"}') as unknown, settings: JSON.parse('{"__proto__": "s1"}') as unknown,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const got = await master.api<{ schedule: { args: Record<string, string>; settings: Record<string, string> } }>('GET', `/api/schedules/${created.body.schedule.id}`);
    assert.deepEqual(Object.entries(got.body.schedule.args).sort(), [['__proto__', 'a1'], ['constructor', 'a2']]);
    assert.deepEqual(Object.entries(got.body.schedule.settings), [['__proto__', 's1']]);
  });
});

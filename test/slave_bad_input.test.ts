// Bad input to a real slave daemon: every refusal is Scrapyd's error JSON (HTTP 200,
// {"status": "error", "message": …, "node_name": …}) with a clear message, the daemon keeps serving,
// nothing is written outside its data dir, and no failed upload leaves a version behind.
// One daemon, started with small limits: --max-unzipped-mb 1 --max-zip-entries 10 --max-upload-mb 1.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, startSlave, tempDir, waitForState, type SlaveHandle } from './helpers/slave_process.ts';
import { buildNodePackage } from './helpers/fixtures.ts';
import {
  NOT_FOUND_PAGE, assertError, assertErrorLike, findNamed, okBody, raw, rawGet, rawPost, rawUpload, rawZip, treeListing,
  type RawEntry,
} from './helpers/api_checks.ts';

const MIB = 1024 * 1024;
/** Unique per run, so a file that escaped can be told from anything else on the machine. */
const TAG = `evil${process.pid}x${randomBytes(4).toString('hex')}`;

let root: string; // the temp dir this test owns; the data dir is root/data
let dataDir: string;
let slave: SlaveHandle;
let base: string;
let nodePkg: Buffer;
let rootBefore: string[];
let tmpBefore: string[];
/** Every project a refused upload was sent to: none may exist at the end. */
const refusedProjects = new Set<string>();

const MANIFEST = Buffer.from(JSON.stringify({ spiders: { a: { command: ['node', 'a.js'] } } }));
const manifestZip = (...more: RawEntry[]) => rawZip([{ name: 'spiderplane.json', content: MANIFEST }, { name: 'a.js', content: Buffer.from('1') }, ...more]);

/** Uploads a package that must be refused with exactly `message` (or a message matching it). */
async function refusedUpload(project: string, egg: Buffer | string | null, message: string | RegExp, version: string | null = '1'): Promise<string> {
  refusedProjects.add(project);
  const r = await rawUpload(base, project, version, egg);
  if (typeof message === 'string') {
    assertError(r, 'POST', message, `upload to ${project}`);
    return message;
  }
  return assertErrorLike(r, 'POST', message, `upload to ${project}`);
}

before(async () => {
  root = tempDir('spiderplane-badinput-');
  dataDir = join(root, 'data');
  tmpBefore = readdirSync(tmpdir()).filter((n) => n.includes(TAG));
  nodePkg = readFileSync(await buildNodePackage(join(root, 'fixtures')));
  rootBefore = treeListing(root);
  slave = await startSlave({ dataDir, args: ['--max-unzipped-mb', '1', '--max-zip-entries', '10', '--max-upload-mb', '1'] });
  base = slave.url;
  // A good project, so "unknown version/spider/job" are asked of a project that exists.
  const r = await rawUpload(base, 'gen', '1', nodePkg);
  assert.equal(r.text, okBody('"project": "gen", "version": "1", "spiders": 4'));
});

afterEach(async () => {
  // After every refusal the daemon is still up and answering.
  assert.equal(slave.proc.exitCode, null, `daemon exited:\n${slave.output()}`);
  const r = await rawGet(base, '/daemonstatus.json');
  assert.equal(r.status, 200);
  assert.match(r.text, /^\{"pending": \d+, "running": \d+, "finished": \d+, "status": "ok", "node_name": "testnode"\}\n$/);
});

after(async () => {
  await slave?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

describe('missing parameters', () => {
  const cases: Array<[method: 'GET' | 'POST', path: string, params: Record<string, string>, missing: string]> = [
    ['POST', '/schedule.json', { spider: 'hello' }, 'project'],
    ['POST', '/schedule.json', { project: 'gen' }, 'spider'],
    ['POST', '/schedule.json', {}, 'project'],
    ['POST', '/cancel.json', { job: 'x' }, 'project'],
    ['POST', '/cancel.json', { project: 'gen' }, 'job'],
    ['GET', '/status.json', {}, 'job'],
    ['GET', '/status.json', { project: 'gen' }, 'job'],
    ['GET', '/listversions.json', {}, 'project'],
    ['GET', '/listspiders.json', {}, 'project'],
    ['POST', '/delversion.json', { version: '1' }, 'project'],
    ['POST', '/delversion.json', { project: 'gen' }, 'version'],
    ['POST', '/delproject.json', {}, 'project'],
    ['POST', '/addversion.json', { version: '1' }, 'project'],
  ];
  for (const [method, path, params, missing] of cases) {
    test(`${path} without ${missing} (given ${JSON.stringify(params)})`, async () => {
      const r = method === 'GET' ? await rawGet(base, path, params) : await rawPost(base, path, params);
      assertError(r, method, `'${missing}' parameter is required`);
    });
  }

  test('addversion without project, version or egg (multipart)', async () => {
    assertError(await rawUpload(base, null, '1', nodePkg), 'POST', "'project' parameter is required");
    assertError(await rawUpload(base, 'missing-v', null, nodePkg), 'POST', "'version' parameter is required");
    assertError(await rawUpload(base, 'missing-egg', '1', null), 'POST', "'egg' parameter is required");
    refusedProjects.add('missing-v').add('missing-egg');
  });
});

describe('bad values', () => {
  test('priority that is not a number: Scrapyd\'s exact message', async () => {
    assertError(await rawPost(base, '/schedule.json', { project: 'gen', spider: 'hello', priority: 'high' }), 'POST',
      "priority is invalid: could not convert string to float: b'high'");
    assertError(await rawPost(base, '/schedule.json', { project: 'gen', spider: 'hello', priority: '' }), 'POST',
      "priority is invalid: could not convert string to float: b''");
  });

  test('a setting without "=" (or with an empty name)', async () => {
    assertError(await rawPost(base, '/schedule.json', [['project', 'gen'], ['spider', 'hello'], ['setting', 'A=1'], ['setting', 'NOEQUALS']]), 'POST',
      "setting 'NOEQUALS' is invalid: expected NAME=VALUE");
    assertError(await rawPost(base, '/schedule.json', [['project', 'gen'], ['spider', 'hello'], ['setting', '=v']]), 'POST',
      "setting '=v' is invalid: expected NAME=VALUE");
  });

  test('a spider argument whose name holds "="', async () => {
    assertError(await rawPost(base, '/schedule.json', [['project', 'gen'], ['spider', 'hello'], ['a=b', '1']]), 'POST',
      "spider argument name 'a=b' is invalid");
  });

  test('cancel with a bad signal', async () => {
    const msg = (s: string) => `signal '${s}' is invalid: use one of INT, TERM, KILL, HUP, QUIT, USR1, USR2 (or its number)`;
    for (const s of ['FOO', '99', 'SIGFOO', '']) {
      assertError(await rawPost(base, '/cancel.json', { project: 'gen', job: 'x', signal: s }), 'POST', msg(s), `signal ${s}`);
    }
  });

  test('extension endpoints refuse bad filters', async () => {
    assertError(await rawGet(base, '/jobs.json', { state: 'bogus' }), 'GET', "state 'bogus' is invalid: use pending, running or finished");
    assertError(await rawGet(base, '/jobs.json', { limit: 'abc' }), 'GET', 'limit is invalid: expected an integer from 0 to 10000');
    assertError(await rawGet(base, '/jobs.json', { offset: '-1' }), 'GET', `offset is invalid: expected an integer from 0 to ${Number.MAX_SAFE_INTEGER}`);
    assertError(await rawGet(base, '/jobs.json', [['project', 'a'], ['project', 'b']]), 'GET', 'project is invalid: give it once');
    assertError(await rawGet(base, '/errors.json', { limit: '5000' }), 'GET', 'limit is invalid: expected an integer from 0 to 1000');
  });
});

// The names that must never become paths, and what the daemon says about each.
const BAD_NAMES: Array<[label: string, value: string, problem: string]> = [
  ['slash', 'a/b', "must not contain '/' or '\\'"],
  ['dotdot-slash', `../${TAG}`, "must not contain '/' or '\\'"],
  ['backslash', `..\\${TAG}`, "must not contain '/' or '\\'"],
  ['dotdot', '..', "must not be '.' or contain '..'"],
  ['dot', '.', "must not be '.' or contain '..'"],
  ['NUL', 'a\0b', 'must not contain NUL'],
  ['201 chars', 'x'.repeat(201), 'must be at most 200 characters'],
  ['control char', 'a\x07b', 'must not contain control characters'],
  ['leading dash', '-rf', "must not start with '-'"],
];

describe('names that would become paths', () => {
  for (const [label, value, problem] of BAD_NAMES) {
    const invalid = (kind: string) => `${kind} '${value.slice(0, 200)}' is invalid: it ${problem}`;

    test(`project name (${label}) on every endpoint that takes one`, async () => {
      refusedProjects.add(value);
      assertError(await rawUpload(base, value, '1', nodePkg), 'POST', invalid('project'), 'addversion');
      assertError(await rawPost(base, '/schedule.json', { project: value, spider: 'hello' }), 'POST', invalid('project'), 'schedule');
      assertError(await rawPost(base, '/cancel.json', { project: value, job: 'x' }), 'POST', invalid('project'), 'cancel');
      assertError(await rawGet(base, '/status.json', { project: value, job: 'x' }), 'GET', invalid('project'), 'status');
      assertError(await rawGet(base, '/listspiders.json', { project: value }), 'GET', invalid('project'), 'listspiders');
      assertError(await rawGet(base, '/listjobs.json', { project: value }), 'GET', invalid('project'), 'listjobs');
      assertError(await rawPost(base, '/delversion.json', { project: value, version: '1' }), 'POST', invalid('project'), 'delversion');
      assertError(await rawPost(base, '/delproject.json', { project: value }), 'POST', invalid('project'), 'delproject');
      // Scrapyd's quirk: listversions of a project it does not have is an empty list.
      assert.equal((await rawGet(base, '/listversions.json', { project: value })).text, okBody('"versions": []'));
    });

    test(`spider name and jobid (${label}) on schedule`, async () => {
      assertError(await rawPost(base, '/schedule.json', { project: 'gen', spider: value }), 'POST', invalid('spider'), 'spider');
      assertError(await rawPost(base, '/schedule.json', { project: 'gen', spider: 'hello', jobid: value }), 'POST', invalid('jobid'), 'jobid');
    });

    test(`job id (${label}) on cancel and status is an unknown job`, async () => {
      // schedule refuses such ids, so no job can have one: Scrapyd's answer for an unknown job.
      assert.equal((await rawPost(base, '/cancel.json', { project: 'gen', job: value })).text, okBody('"prevstate": null'));
      assert.equal((await rawGet(base, '/status.json', { job: value })).text, okBody('"currstate": null'));
      assert.equal((await rawGet(base, '/status.json', { job: value, project: 'gen' })).text, okBody('"currstate": null'));
    });
  }

  test('version names: Scrapyd sanitises [^A-Za-z0-9_-] to "_", so "/", ".." and NUL cannot form a path', async () => {
    // Real Scrapyd stores version "a/b" as "a_b" (see the reference's "r2.0-beta" -> "r2_0-beta");
    // the echo keeps the given name, listversions shows the stored one, delversion takes either.
    const cases: Array<[given: string, stored: string]> = [
      ['a/b', 'a_b'], [`../../${TAG}`, `______${TAG}`], ['..', '__'], ['x\0y', 'x_y'], [`..\\${TAG}`, `___${TAG}`],
    ];
    for (const [given, stored] of cases) {
      const r = await rawUpload(base, 'vers', given, nodePkg);
      assert.equal(r.text, `{"project": "vers", "version": ${JSON.stringify(given)}, "spiders": 4, "status": "ok", "node_name": "testnode"}\n`, given);
      assert.deepEqual((JSON.parse((await rawGet(base, '/listversions.json', { project: 'vers' })).text) as { versions: string[] }).versions, [stored], given);
      assert.equal((await rawGet(base, '/listspiders.json', { project: 'vers', _version: given })).text, okBody('"spiders": ["count", "crash", "hello", "shell"]'));
      assert.equal((await rawPost(base, '/delversion.json', { project: 'vers', version: given })).text, okBody(''), given);
    }
    assert.equal((await rawGet(base, '/listversions.json', { project: 'vers' })).text, okBody('"versions": []'));
    refusedProjects.add('vers');
    // A stored name over 200 characters is refused.
    const long = 'v'.repeat(201);
    assertError(await rawUpload(base, 'vers', long, nodePkg), 'POST', `version '${'v'.repeat(200)}' is invalid: it must be at most 200 characters`);
    assertError(await rawUpload(base, 'vers', '', nodePkg), 'POST', "version '' is invalid: it must not be empty");
    assertError(await rawUpload(base, 'vers', '-1', nodePkg), 'POST', "version '-1' is invalid: it must not start with '-'");
    // Unknown (and odd) versions elsewhere are "not found".
    for (const v of ['a/b', '..', 'x\0y', long]) {
      assertError(await rawGet(base, '/listspiders.json', { project: 'gen', _version: v }), 'GET', `version '${v}' not found`);
      assertError(await rawPost(base, '/delversion.json', { project: 'gen', version: v }), 'POST', `version '${v}' not found`);
      assertError(await rawPost(base, '/schedule.json', { project: 'gen', spider: 'hello', _version: v }), 'POST', `version '${v}' not found`);
    }
  });

  test('paths under /logs/ and /items/ cannot climb out', async () => {
    for (const path of ['/logs/..%2fslave.db', '/logs/%2e%2e/slave.db', '/logs/%2e%2e%2fslave.db', '/items/..%2f..%2f..%2fetc%2fpasswd',
      '/logs/gen/hello/..%2f..%2f..%2fslave.db', '/logs/gen/%2e%2e/x.json', '/logs/gen/hello/%00.log', '/items/gen/..%5c..%5cslave.db']) {
      const r = await rawGet(base, path);
      assert.equal(r.status, 404, path);
      assert.equal(r.text, NOT_FOUND_PAGE, path);
    }
  });
});

describe('unknown project, version, spider, job', () => {
  test('unknown project', async () => {
    assertError(await rawPost(base, '/schedule.json', { project: 'nope', spider: 'hello' }), 'POST', "project 'nope' not found");
    assertError(await rawGet(base, '/listspiders.json', { project: 'nope' }), 'GET', "project 'nope' not found");
    assertError(await rawGet(base, '/listjobs.json', { project: 'nope' }), 'GET', "project 'nope' not found");
    assertError(await rawPost(base, '/cancel.json', { project: 'nope', job: 'x' }), 'POST', "project 'nope' not found");
    assertError(await rawGet(base, '/status.json', { project: 'nope', job: 'x' }), 'GET', "project 'nope' not found");
    assertError(await rawPost(base, '/delproject.json', { project: 'nope' }), 'POST', "project 'nope' not found");
    assertError(await rawPost(base, '/delversion.json', { project: 'nope', version: '1' }), 'POST', "version '1' not found");
    assert.equal((await rawGet(base, '/listversions.json', { project: 'nope' })).text, okBody('"versions": []'));
  });

  test('unknown version', async () => {
    assertError(await rawPost(base, '/schedule.json', { project: 'gen', spider: 'hello', _version: 'nope' }), 'POST', "version 'nope' not found");
    assertError(await rawGet(base, '/listspiders.json', { project: 'gen', _version: 'nope' }), 'GET', "version 'nope' not found");
    assertError(await rawPost(base, '/delversion.json', { project: 'gen', version: 'nope' }), 'POST', "version 'nope' not found");
  });

  test('unknown spider', async () => {
    assertError(await rawPost(base, '/schedule.json', { project: 'gen', spider: 'nope' }), 'POST', "spider 'nope' not found");
    assertError(await rawPost(base, '/schedule.json', { project: 'gen', spider: 'nope', _version: '1' }), 'POST', "spider 'nope' not found");
  });

  test('unknown job', async () => {
    assert.equal((await rawPost(base, '/cancel.json', { project: 'gen', job: 'nope' })).text, okBody('"prevstate": null'));
    assert.equal((await rawGet(base, '/status.json', { job: 'nope' })).text, okBody('"currstate": null'));
    assert.equal((await rawGet(base, '/jobs.json', { job: 'nope' })).text, okBody('"jobs": []'));
    for (const path of ['/logs/gen/hello/nope.log', '/logs/gen/hello/nope.json', '/items/gen/hello/nope.jl']) {
      const r = await rawGet(base, path);
      assert.equal(r.status, 404, path);
      assert.equal(r.text, NOT_FOUND_PAGE, path);
    }
  });
});

describe('bad uploads', () => {
  test('egg sent as a plain form field (curl egg=path)', async () => {
    await refusedUpload('plainfield', 'path/to/project.egg', 'egg is not a ZIP file (if using curl, use egg=@path not egg=path)');
    refusedProjects.add('plainfield-urlenc');
    assertError(await rawPost(base, '/addversion.json', { project: 'plainfield-urlenc', version: '1', egg: 'project.egg' }), 'POST',
      'egg is not a ZIP file (if using curl, use egg=@path not egg=path)');
  });

  test('a file that is not a zip (text, empty, a lone PK)', async () => {
    for (const [i, data] of [Buffer.from('this is not a zip file\n'), Buffer.alloc(0), Buffer.from('PK')].entries()) {
      await refusedUpload(`notzip${i}`, data, 'egg is not a ZIP file (if using curl, use egg=@path not egg=path)');
    }
  });

  test('a corrupt zip: truncated, or with damaged compressed data', async () => {
    await refusedUpload('trunc', nodePkg.subarray(0, Math.floor(nodePkg.length / 2)), /^package is not a valid ZIP file: /);
    await refusedUpload('trunc2', nodePkg.subarray(0, nodePkg.length - 5), /^package is not a valid ZIP file: /);
    const zip = rawZip([{ name: 'spiderplane.json', content: MANIFEST, method: 0 }, { name: 'a.js', content: Buffer.from('console.log(1);\n'.repeat(50)), method: 8 }]);
    const at = 30 + 'spiderplane.json'.length + MANIFEST.length + 30 + 'a.js'.length; // first compressed byte of a.js
    assert.equal(zip.subarray(at - 4, at).toString(), 'a.js');
    for (let i = 0; i < 6; i++) zip[at + i] = zip[at + i]! ^ 0xa5;
    await refusedUpload('damaged', zip, /^package is not a valid ZIP file: entry 'a\.js' (has corrupt compressed data|failed its CRC32 check|decompresses to)/);
    // A zip that is fine except that it holds nothing usable.
    await refusedUpload('emptyzip', rawZip([]), /^egg has no Scrapy entry point/);
  });

  test('zip-slip and absolute paths inside a generic package are refused before anything is written', async () => {
    const cases: Array<[name: string, message: string]> = [
      [`../${TAG}-1.txt`, `zip entry '../${TAG}-1.txt' escapes the package folder ('..' path segment)`],
      [`../../../${TAG}-3.txt`, `zip entry '../../../${TAG}-3.txt' escapes the package folder ('..' path segment)`],
      [`../../../../../../../../../../tmp/${TAG}-10.txt`, `zip entry '../../../../../../../../../../tmp/${TAG}-10.txt' escapes the package folder ('..' path segment)`],
      [`sub/../../${TAG}-sub.txt`, `zip entry 'sub/../../${TAG}-sub.txt' escapes the package folder ('..' path segment)`],
      [`/tmp/${TAG}-abs.txt`, `zip entry '/tmp/${TAG}-abs.txt' has an absolute path`],
      [`${root}/${TAG}-root.txt`, `zip entry '${root}/${TAG}-root.txt' has an absolute path`],
      [`C:/${TAG}-drive.txt`, `zip entry 'C:/${TAG}-drive.txt' has an absolute path`],
      [`..\\..\\${TAG}-bs.txt`, `zip entry '..\\..\\${TAG}-bs.txt' contains a backslash; only '/' is allowed as path separator`],
      [`${TAG}-nul\0.txt`, `zip entry '${TAG}-nul\\x00.txt' contains a NUL or control character in its name`],
    ];
    for (const [i, [name, message]] of cases.entries()) {
      // The evil entry comes first, then a valid manifest: nothing may be extracted at all.
      await refusedUpload(`slip${i}`, rawZip([{ name, content: Buffer.from('pwned\n') }, { name: 'spiderplane.json', content: MANIFEST }]), message);
    }
    // A symlink entry pointing outside.
    await refusedUpload('symlink', manifestZip({ name: `${TAG}-link`, content: Buffer.from('/etc/passwd'), method: 0, attr: ((0o120777 << 16) >>> 0) }),
      `zip entry '${TAG}-link' is a symbolic link; symlinks are not allowed in packages`);
    // The same inside something shaped like a Scrapy egg.
    await refusedUpload('slipegg', rawZip([
      { name: 'EGG-INFO/entry_points.txt', content: Buffer.from('[scrapy]\nsettings = demo.settings\n') },
      { name: `../../${TAG}-egg.txt`, content: Buffer.from('pwned\n') },
    ]), `zip entry '../../${TAG}-egg.txt' escapes the package folder ('..' path segment)`);
  });

  test('a zip bomb (5 MB of zeros, with --max-unzipped-mb 1), honest or lying about its size', async () => {
    const zeros = Buffer.alloc(5 * MIB);
    const honest = manifestZip({ name: 'zeros.bin', content: zeros });
    assert.ok(honest.length < 100 * 1024, 'the bomb itself is small');
    await refusedUpload('bomb', honest, "zip contents exceed the limit of 1 MiB uncompressed (at entry 'zeros.bin')");
    // Headers declaring 1000 bytes for an entry that inflates to 5 MB.
    await refusedUpload('bomb-lying', manifestZip({ name: 'zeros.bin', content: zeros, size: 1000 }),
      "zip entry 'zeros.bin' decompresses to more than its declared size of 1000 bytes (zip bomb?)");
  });

  test('too many entries (--max-zip-entries 10)', async () => {
    const files = Array.from({ length: 11 }, (_, i) => ({ name: `f${i}.txt`, content: Buffer.from(String(i)) }));
    await refusedUpload('many', manifestZip(...files), 'zip has 13 entries, more than the limit of 10');
  });

  test('an upload over --max-upload-mb 1 (2 MB, and 6 MB refused from its Content-Length)', async () => {
    const big = Buffer.concat([nodePkg, randomBytes(2 * MIB)]);
    await refusedUpload('big2', big, "upload 'egg' is too large: the limit is 1 MiB (--max-upload-mb)");
    await refusedUpload('big6', Buffer.concat([nodePkg, randomBytes(6 * MIB)]), /^upload is too large: \d+ bytes, the limit is 1 MiB \(--max-upload-mb\)$/);
  });

  test('a zip with neither spiderplane.json nor a Scrapy entry point', async () => {
    const noEntry = 'egg has no Scrapy entry point: EGG-INFO/entry_points.txt needs "[scrapy]" with "settings = yourproject.settings" (what scrapyd-deploy\'s setup.py declares), and there is no spiderplane.json for a generic package';
    await refusedUpload('noentry', rawZip([{ name: 'readme.txt', content: Buffer.from('hello') }]), noEntry);
    await refusedUpload('noentry2', rawZip([{ name: 'EGG-INFO/entry_points.txt', content: Buffer.from('[console_scripts]\nx = y:z\n') }]), noEntry);
    await refusedUpload('noentry3', rawZip([{ name: 'sub/spiderplane.json', content: MANIFEST }]), noEntry);
  });

  test('a Scrapy egg whose settings module does not import: the runner traceback, nothing stored', async () => {
    // Unlike Scrapyd (which keeps such an egg), the slave refuses it and keeps nothing.
    const msg = await refusedUpload('brokenegg', rawZip([
      { name: 'EGG-INFO/entry_points.txt', content: Buffer.from('[scrapy]\nsettings = nosuchmodule_xyz.settings\n') },
      { name: 'EGG-INFO/PKG-INFO', content: Buffer.from('Metadata-Version: 1.0\nName: x\nVersion: 1\n') },
    ]), /^RunnerError: Traceback \(most recent call last\):\n/);
    assert.match(msg, /ModuleNotFoundError: No module named 'nosuchmodule_xyz'/);
  });

  test('a bad spiderplane.json: invalid JSON, no spiders, bad command, bad names', async () => {
    const cases: Array<[manifest: string, message: string | RegExp]> = [
      ['{nope', /^spiderplane\.json is not valid JSON: /],
      ['', /^spiderplane\.json is not valid JSON: /],
      ['[1, 2]', 'spiderplane.json must be a JSON object'],
      ['{}', 'spiderplane.json needs a non-empty "spiders" object: {"spiders": {"name": {"command": [...]}}}'],
      ['{"spiders": {}}', 'spiderplane.json needs a non-empty "spiders" object: {"spiders": {"name": {"command": [...]}}}'],
      ['{"spiders": ["a"]}', 'spiderplane.json needs a non-empty "spiders" object: {"spiders": {"name": {"command": [...]}}}'],
      ['{"spiders": {"a": "node a.js"}}', 'spiderplane.json: spiders.a must be an object with a "command"'],
      ['{"spiders": {"a": {}}}', 'spiderplane.json: spiders.a.command must be a non-empty string or array of strings'],
      ['{"spiders": {"a": {"command": 5}}}', 'spiderplane.json: spiders.a.command must be a non-empty string or array of strings'],
      ['{"spiders": {"a": {"command": []}}}', 'spiderplane.json: spiders.a.command must be a non-empty string or array of strings'],
      ['{"spiders": {"a": {"command": ["node", 7]}}}', 'spiderplane.json: spiders.a.command must be a non-empty string or array of strings'],
      ['{"spiders": {"a": {"command": "   "}}}', 'spiderplane.json: spiders.a.command must be a non-empty string or array of strings'],
      ['{"spiders": {"a": {"command": ["x"], "env": {"K": 1}}}}', 'spiderplane.json: spiders.a.env must be an object of strings'],
      [`{"spiders": {"../${TAG}": {"command": ["x"]}}}`, `spiderplane.json: spider name '../${TAG}' must not contain '/' or '\\'`],
      ['{"spiders": {"..": {"command": ["x"]}}}', "spiderplane.json: spider name '..' must not be '.' or contain '..'"],
    ];
    for (const [i, [manifest, message]] of cases.entries()) {
      await refusedUpload(`badmanifest${i}`, rawZip([{ name: 'spiderplane.json', content: Buffer.from(manifest) }]), message);
    }
  });

  test('a malformed multipart body', async () => {
    refusedProjects.add('p');
    assertError(await raw(`${base}/addversion.json`, { method: 'POST', headers: { 'Content-Type': 'multipart/form-data; boundary=XYZ' }, body: 'garbage' }), 'POST',
      'cannot read the multipart body: Unexpected end of form');
    assertError(await raw(`${base}/addversion.json`, { method: 'POST', headers: { 'Content-Type': 'multipart/form-data' }, body: 'garbage' }), 'POST',
      'cannot read the multipart body: Multipart: Boundary not found');
  });

  test('an oversized form body is refused and the connection stays usable', async () => {
    // 4.5 MiB of form data (over the 4 MiB form limit), then ordinary requests: every one must be
    // answered. A keep-alive connection left half-read must not reset the client's next request.
    const r = await raw(`${base}/schedule.json`, {
      method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'project=gen&spider=hello&a=' + 'x'.repeat(4.5 * MIB),
    });
    assertError(r, 'POST', `request body is too large (over ${4 * MIB} bytes)`);
    const failures: string[] = [];
    for (let i = 0; i < 6; i++) {
      try {
        const s = await rawGet(base, '/daemonstatus.json');
        if (s.status !== 200) failures.push(`request ${i}: HTTP ${s.status}`);
      } catch (e) {
        failures.push(`request ${i}: ${String((e as { cause?: unknown }).cause ?? e)}`);
      }
    }
    assert.deepEqual(failures, [], 'requests after the refused body failed');
  });
});

describe('afterwards', () => {
  test('the daemon still runs jobs', async () => {
    const r = await rawPost(base, '/schedule.json', { project: 'gen', spider: 'hello', jobid: 'still-alive' });
    assert.equal(r.text, okBody('"jobid": "still-alive"'));
    await waitForState(base, 'still-alive', 'finished');
    const items = await rawGet(base, '/items/gen/hello/still-alive.jl');
    assert.equal(items.status, 200);
    assert.equal(items.text.trimEnd().split('\n').length, 2);
  });

  test('no failed upload left a version or a project behind', async () => {
    assert.equal((await rawGet(base, '/listprojects.json')).text, okBody('"projects": ["gen"]'));
    assert.equal((await rawGet(base, '/listversions.json', { project: 'gen' })).text, okBody('"versions": ["1"]'));
    assert.ok(refusedProjects.size > 40, `refused uploads were tried (${refusedProjects.size})`);
    for (const p of refusedProjects) {
      const r = await rawGet(base, '/listversions.json', { project: p });
      assert.equal(r.text, okBody('"versions": []'), `project ${JSON.stringify(p.slice(0, 40))}`);
    }
    // No half-written package on disk: no staging leftovers, and every stored file is gen's.
    const files = treeListing(dataDir);
    assert.deepEqual(files.filter((f) => /incoming|partial|replaced/.test(f)), [], 'staging leftovers');
    const stored = files.filter((f) => (f.startsWith('eggs/') || f.startsWith('packages/')) && !f.endsWith('/'));
    assert.ok(stored.length > 0);
    assert.deepEqual(stored.filter((f) => !f.startsWith('packages/gen/1/')), [], 'files of refused uploads');
  });

  test('nothing was written outside the data dir', async () => {
    // The temp dir this test owns: only data/ (and the fixture zip written before the daemon started) are there.
    const now = treeListing(root).filter((p) => !p.startsWith('data/'));
    assert.deepEqual(now, rootBefore.filter((p) => !p.startsWith('data/')));
    assert.deepEqual(findNamed(root, /^evil/), [], 'a file named evil* under the test temp dir');
    assert.deepEqual(findNamed(root, new RegExp(TAG)), []);
    // Nor next to it, in /tmp, or in the daemon's working directory.
    assert.deepEqual(readdirSync(tmpdir()).filter((n) => n.includes(TAG)), tmpBefore);
    assert.deepEqual(readdirSync(ROOT).filter((n) => n.includes(TAG)), []);
    assert.deepEqual(readdirSync(join(root, '..')).filter((n) => n.includes(TAG)), []);
  });
});

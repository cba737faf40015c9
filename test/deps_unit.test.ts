// Pure parts of per-project dependencies (issue 10): reading what a package declares, the
// environment keys, pip's/npm's failure lines, the spider's activated environment, and the CLI
// putting a project's requirements.txt into its egg.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import AdmZip from 'adm-zip';
import {
  declaredFrom, failedRequirement, failureReason, nodeEnvKey, normalizeRequirements, pythonEnvKey,
  requirementsTxtLines, requiresTxtLines, RequirementsError, topLevelNames, ENV_KEY,
} from '../common/packages/requirements.ts';
import { activateEnvironments, pythonFor } from '../slave/runner/env_activation.ts';
import { buildPackage } from '../cli/package_builder.ts';
import { PYTHON, SCRAPY_PROJECT_DIR } from './helpers/fixtures.ts';
import { tempDir } from './helpers/slave_process.ts';

const none = { requiresTxt: null, requirementsTxt: null, packageJson: null, lockfile: null };

test('requires.txt: only the unconditional lines, before any [extra] section', () => {
  assert.deepEqual(requiresTxtLines('pymongo>=4\nscrapy-redis\n\n[dev]\npytest\n[:python_version < "3.8"]\nfoo\n'), ['pymongo>=4', 'scrapy-redis']);
});

test('requirements.txt: comments and blanks dropped, continuation joined, file options refused by name', () => {
  assert.deepEqual(requirementsTxtLines('# top\npymongo==4.6  # pinned\n\nrequests \\\n  >=2\n'), ['pymongo==4.6', 'requests >=2']);
  assert.throws(() => requirementsTxtLines('-r other.txt\n'), (e: Error) => e instanceof RequirementsError && /-r other\.txt/.test(e.message));
  assert.throws(() => requirementsTxtLines('--index-url http://x\n'), RequirementsError);
});

test('the same requirements in any order give the same key; other ones, another', () => {
  const a = normalizeRequirements(['b==1', 'a==2', 'b==1']);
  const b = normalizeRequirements(['a==2', ' b==1 ']);
  assert.deepEqual(a, ['a==2', 'b==1']);
  assert.equal(pythonEnvKey('/usr/bin/python3', '3.11.2', a), pythonEnvKey('/usr/bin/python3', '3.11.2', b));
  assert.notEqual(pythonEnvKey('/usr/bin/python3', '3.11.2', a), pythonEnvKey('/usr/bin/python3', '3.12.0', a));
  assert.notEqual(pythonEnvKey('/usr/bin/python3', '3.11.2', a), pythonEnvKey('/usr/bin/python3', '3.11.2', ['a==3', 'b==1']));
  assert.match(pythonEnvKey('x', 'y', a), ENV_KEY);
});

test('egg: requires.txt and requirements.txt together; an uberegg\'s bundled requirements need no environment', () => {
  const d = declaredFrom({ ...none, requiresTxt: 'Scrapy-Redis>=0.7\npymongo\n', requirementsTxt: 'tinylib==1.0\n' }, { topLevel: topLevelNames(['scrapy_redis/__init__.py', 'scrapy_redis-0.7.3.dist-info/METADATA', 'EGG-INFO/PKG-INFO', 'demo/settings.py']) });
  assert.deepEqual(d.python, ['pymongo', 'tinylib==1.0']);
  assert.equal(d.node, null);
  assert.deepEqual(declaredFrom(none, { topLevel: new Set() }), { python: [], node: null });
});

test('generic: a lockfile needs its package.json; scripts only when the manifest allows them', () => {
  const lock = { name: 'package-lock.json', text: '{"lockfileVersion":3}' };
  assert.throws(() => declaredFrom({ ...none, lockfile: lock }, null), /package-lock\.json without a package\.json/);
  const off = declaredFrom({ ...none, packageJson: '{"name":"x"}', lockfile: lock }, null).node!;
  const on = declaredFrom({ ...none, packageJson: '{"name":"x","spiderplane":{"npmScripts":true}}', lockfile: lock }, null).node!;
  assert.equal(off.scripts, false);
  assert.equal(on.scripts, true);
  assert.notEqual(nodeEnvKey('v20', off), nodeEnvKey('v20', on));
  assert.throws(() => declaredFrom({ ...none, packageJson: '{', lockfile: lock }, null), /package\.json is not valid JSON/);
});

test('failure lines: pip\'s ERROR lines and the requirement it names', () => {
  const out = 'Looking in links: /w\nWARNING: x\nERROR: Could not find a version that satisfies the requirement nosuch==1.0 (from versions: none)\nERROR: No matching distribution found for nosuch==1.0\n';
  assert.equal(failedRequirement(out), 'nosuch==1.0');
  assert.equal(failureReason(out), 'ERROR: Could not find a version that satisfies the requirement nosuch==1.0 (from versions: none)\nERROR: No matching distribution found for nosuch==1.0');
  assert.equal(failureReason('a\nb\nc\n', 2), 'b\nc');
});

test('activation: the env\'s bin first on PATH, VIRTUAL_ENV set, PYTHONHOME unset; nothing without an env', () => {
  const base = { PATH: '/usr/bin:/bin', PYTHONHOME: '/x', HOME: '/h' };
  assert.equal(activateEnvironments(base, { pyEnv: null, nodeEnv: null }), base);
  const env = activateEnvironments(base, { pyEnv: '/d/envs/py-1', nodeEnv: '/d/envs/node-2' });
  assert.equal(env.PATH, '/d/envs/py-1/bin:/d/envs/node-2/node_modules/.bin:/usr/bin:/bin');
  assert.equal(env.VIRTUAL_ENV, '/d/envs/py-1');
  assert.equal(env.PYTHONHOME, undefined);
  assert.equal(base.PYTHONHOME, '/x', 'the base is not changed');
  assert.equal(pythonFor({ pyEnv: '/d/envs/py-1', nodeEnv: null }, '/usr/bin/python3'), '/d/envs/py-1/bin/python');
  assert.equal(pythonFor({ pyEnv: null, nodeEnv: null }, '/usr/bin/python3'), '/usr/bin/python3');
});

test('spiderplane deploy puts the project\'s requirements.txt into the egg', async () => {
  const dir = join(tempDir(), 'proj');
  cpSync(SCRAPY_PROJECT_DIR, dir, { recursive: true });
  const without = await buildPackage(dir, PYTHON);
  assert.equal(new AdmZip(without.data).getEntry('requirements.txt'), null);
  writeFileSync(join(dir, 'requirements.txt'), 'tinylib==1.0\n');
  const built = await buildPackage(dir, PYTHON);
  assert.equal(built.kind, 'scrapy-egg');
  assert.equal(new AdmZip(built.data).readAsText('requirements.txt'), 'tinylib==1.0\n');
});

test('a Node package\'s next version with the same lockfile shares its environment; another dependency does not', () => {
  const pkg = (version: string, dep = '1.3.0') => JSON.stringify({ name: 'p', version, dependencies: { nodelib: dep } });
  const lock = (version: string, dep = '1.3.0') => JSON.stringify({
    name: 'p', version, lockfileVersion: 3,
    packages: { '': { name: 'p', version, dependencies: { nodelib: dep } }, 'node_modules/nodelib': { version: dep, integrity: `sha512-${dep}` } },
  });
  const key = (v: string, dep?: string) => nodeEnvKey('v20', declaredFrom({ ...none, packageJson: pkg(v, dep), lockfile: { name: 'package-lock.json', text: lock(v, dep) } }, null).node!);
  assert.equal(key('1.0.0'), key('1.0.1'));
  assert.notEqual(key('1.0.0'), key('1.0.0', '1.4.0'));
});

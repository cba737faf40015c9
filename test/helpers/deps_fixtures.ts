// Fixtures for per-project dependencies (issue 10), all built offline with the real tools:
// a wheelhouse holding a tiny library `tinylib` in versions 1.0 and 2.0 (pip wheel), Scrapy eggs
// that import it (setup.py bdist_egg, as scrapyd-deploy does), and a Node library packed with
// `npm pack` that a generic package depends on through its lockfile.
import { execFile } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import AdmZip from 'adm-zip';
import { PYTHON } from './fixtures.ts';

const run = promisify(execFile);

/** Builds tinylib VERSION wheels into `wheelhouse` (created). tinylib.VERSION names the version. */
export async function buildWheelhouse(workDir: string, versions: string[]): Promise<string> {
  const wheelhouse = join(workDir, 'wheelhouse');
  await mkdir(wheelhouse, { recursive: true });
  for (const v of versions) {
    const src = join(workDir, `tinylib-src-${v}`);
    await mkdir(join(src, 'tinylib'), { recursive: true });
    await writeFile(join(src, 'setup.py'), `from setuptools import setup\nsetup(name='tinylib', version='${v}', packages=['tinylib'])\n`);
    await writeFile(join(src, 'tinylib', '__init__.py'), `VERSION = '${v}'\n`);
    await run(PYTHON, ['-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation', '--no-index', '-w', wheelhouse, src], { env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
  }
  for (const f of await readdir(wheelhouse)) chmodSync(join(wheelhouse, f), 0o644);
  return wheelhouse;
}

const WHICH_SPIDER = `import os
import scrapy
import tinylib


class WhichSpider(scrapy.Spider):
    """One item naming the tinylib it imported and the environment it ran in."""
    name = 'which'

    def start_requests(self):
        yield scrapy.Request('data:,which')

    def parse(self, response):
        yield {'tinylib': tinylib.VERSION, 'tinylib_file': tinylib.__file__, 'virtual_env': os.environ.get('VIRTUAL_ENV')}
`;

/**
 * A Scrapy egg of project `depdemo` whose spider `which` imports tinylib at import time (so
 * `scrapy list` fails without it). installRequires goes to setup.py (EGG-INFO/requires.txt);
 * requirementsTxt is added at the egg's root; bundleTinylib puts tinylib's code in the egg.
 */
export async function buildDepsEgg(workDir: string, opts: { installRequires?: string[]; requirementsTxt?: string; bundleTinylib?: boolean }): Promise<Buffer> {
  const src = join(workDir, `egg-src-${Math.random().toString(36).slice(2)}`);
  await mkdir(join(src, 'depdemo', 'spiders'), { recursive: true });
  await writeFile(join(src, 'setup.py'), `from setuptools import setup, find_packages
setup(name='depdemo', version='1.0', packages=find_packages(),
      install_requires=${JSON.stringify(opts.installRequires ?? [])},
      entry_points={'scrapy': ['settings = depdemo.settings']})
`);
  await writeFile(join(src, 'depdemo', '__init__.py'), '');
  await writeFile(join(src, 'depdemo', 'settings.py'), `BOT_NAME = 'depdemo'\nSPIDER_MODULES = ['depdemo.spiders']\nROBOTSTXT_OBEY = False\nTELNETCONSOLE_ENABLED = False\nLOG_LEVEL = 'INFO'\nREQUEST_FINGERPRINTER_IMPLEMENTATION = '2.7'\n`);
  await writeFile(join(src, 'depdemo', 'spiders', '__init__.py'), '');
  await writeFile(join(src, 'depdemo', 'spiders', 'which.py'), WHICH_SPIDER);
  if (opts.bundleTinylib) {
    // As an uberegg carries its dependencies: the library's code inside the egg itself.
    await mkdir(join(src, 'tinylib'), { recursive: true });
    await writeFile(join(src, 'tinylib', '__init__.py'), `VERSION = 'bundled'\n`);
  }
  const dist = join(src, 'dist');
  await run(PYTHON, ['setup.py', 'bdist_egg', '-d', dist], { cwd: src, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
  const egg = (await readdir(dist)).find((f) => f.endsWith('.egg'))!;
  let data: Buffer = await readFile(join(dist, egg));
  if (opts.requirementsTxt !== undefined) {
    const zip = new AdmZip(data);
    zip.addFile('requirements.txt', Buffer.from(opts.requirementsTxt));
    data = zip.toBuffer();
  }
  return data;
}

/** A generic package whose Python spider imports tinylib (requirements.txt) and writes one item. */
export function genericPythonPackage(requirementsTxt: string): Buffer {
  const zip = new AdmZip();
  zip.addFile('spiderplane.json', Buffer.from(JSON.stringify({ spiders: { pywhich: { command: ['python3', 'which.py'] } } })));
  zip.addFile('requirements.txt', Buffer.from(requirementsTxt));
  zip.addFile('which.py', Buffer.from(`import json, os, sys, tinylib
with open(os.environ['SPIDERPLANE_ITEMS_FILE'], 'a') as f:
    f.write(json.dumps({'tinylib': tinylib.VERSION, 'python': sys.executable, 'virtual_env': os.environ.get('VIRTUAL_ENV')}) + '\\n')
`));
  return zip.toBuffer();
}

/**
 * A generic Node package depending on `nodelib` (packed with npm pack into vendor/, referenced as
 * a file: dependency) with a package-lock.json made by npm offline; its spider requires nodelib.
 */
export async function nodePackageWithLockfile(workDir: string): Promise<Buffer> {
  const lib = join(workDir, 'nodelib');
  await mkdir(lib, { recursive: true });
  await writeFile(join(lib, 'package.json'), JSON.stringify({ name: 'nodelib', version: '1.3.0', main: 'index.js' }));
  await writeFile(join(lib, 'index.js'), `module.exports = { version: require('./package.json').version };\n`);
  const pkg = join(workDir, 'nodepkg');
  await mkdir(join(pkg, 'vendor'), { recursive: true });
  const env = { ...process.env, npm_config_cache: join(workDir, 'npm-cache'), npm_config_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
  await run('npm', ['pack', '--pack-destination', join(pkg, 'vendor'), lib], { cwd: workDir, env });
  await writeFile(join(pkg, 'package.json'), JSON.stringify({ name: 'nodepkg', version: '1.0.0', private: true, dependencies: { nodelib: 'file:vendor/nodelib-1.3.0.tgz' } }, null, 2));
  await run('npm', ['install', '--package-lock-only', '--ignore-scripts'], { cwd: pkg, env });
  await writeFile(join(pkg, 'spiderplane.json'), JSON.stringify({ spiders: { nodewhich: { command: ['node', 'which.js'] } } }));
  await writeFile(join(pkg, 'which.js'), `const fs = require('fs');
const nodelib = require('nodelib');
fs.appendFileSync(process.env.SPIDERPLANE_ITEMS_FILE, JSON.stringify({ nodelib: nodelib.version, resolved: require.resolve('nodelib') }) + '\\n');
`);
  const zip = new AdmZip();
  const add = async (dir: string, prefix: string) => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (e.name === 'node_modules') continue;
      if (e.isDirectory()) await add(join(dir, e.name), `${prefix}${e.name}/`);
      else zip.addFile(`${prefix}${e.name}`, await readFile(join(dir, e.name)));
    }
  };
  await add(pkg, '');
  return zip.toBuffer();
}

/**
 * The wheelhouse served over HTTP on 127.0.0.1 (pip's PIP_FIND_LINKS=URL), with a gate: while it
 * is closed, every request waits, so a test holds pip — and the slave's build — mid-way for as long
 * as it needs (to watch "building environment", or to kill the slave), then lets it go.
 */
export interface GatedWheelhouse { url: string; requests: () => number; open: () => void; close: () => void; stop: () => Promise<void> }

export async function serveWheelhouse(wheelhouse: string): Promise<GatedWheelhouse> {
  let waiting: Array<() => void> = [];
  let closed = true;
  let requests = 0;
  const server: Server = createServer((req, res) => {
    requests++;
    const answer = async () => {
      const name = decodeURIComponent((req.url ?? '/').split('?')[0]!.split('/').pop() ?? '');
      const files = await readdir(wheelhouse);
      if (name && files.includes(name)) {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
        res.end(await readFile(join(wheelhouse, name)));
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end(`<html><body>${files.map((f) => `<a href="${f}">${f}</a>`).join('\n')}</body></html>`);
    };
    if (closed) waiting.push(() => void answer());
    else void answer();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/wheels/`,
    requests: () => requests,
    open: () => { closed = false; const w = waiting; waiting = []; for (const f of w) f(); },
    close: () => { closed = true; },
    stop: () => { server.closeAllConnections(); return new Promise((r) => server.close(() => r())); },
  };
}

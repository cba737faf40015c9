import AdmZip from 'adm-zip';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SKIP = new Set(['node_modules', '.git', '__pycache__', 'build', 'dist', '.scrapy', '.venv', 'venv']);

export interface BuiltPackage {
  data: Buffer;
  project: string | null;
  kind: 'file' | 'generic' | 'scrapy-egg';
}

function iniValue(text: string, section: string, key: string): string | null {
  let current = '';
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) { current = header[1]!.trim(); continue; }
    const m = /^([^=:]+)[=:](.*)$/.exec(line);
    if (current === section && m && m[1]!.trim() === key) return m[2]!.trim();
  }
  return null;
}

function zipFolder(dir: string): Buffer {
  const zip = new AdmZip();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      if (SKIP.has(name)) continue;
      const full = join(d, name);
      const st = statSync(full);
      if (st.isDirectory()) walk(full);
      else if (st.isFile()) zip.addFile(relative(dir, full).split('\\').join('/'), readFileSync(full));
    }
  };
  walk(dir);
  return zip.toBuffer();
}

/**
 * The project's requirements.txt goes into the egg's root, where the slaves read it and build the
 * version's environment at deploy (beside setup.py's install_requires, already in EGG-INFO).
 */
function withRequirements(egg: Buffer, projectDir: string): Buffer {
  const file = join(projectDir, 'requirements.txt');
  if (!existsSync(file)) return egg;
  const zip = new AdmZip(egg);
  if (zip.getEntry('requirements.txt')) return egg;
  zip.addFile('requirements.txt', readFileSync(file));
  return zip.toBuffer();
}

/**
 * What `spiderplane deploy PATH` uploads: a file as it is (.egg or .zip); a folder with
 * spiderplane.json zipped as a generic package; a Scrapy project (scrapy.cfg) built into an egg
 * the way scrapyd-deploy builds it (its setup.py, or scrapyd-deploy's generated one), with the
 * project's requirements.txt at the egg's root when there is one. The build
 * runs in a temporary copy: the user's folder is never written to.
 */
export async function buildPackage(path: string, python: string): Promise<BuiltPackage> {
  if (!existsSync(path)) throw new Error(`${path} does not exist`);
  if (statSync(path).isFile()) return { data: readFileSync(path), project: null, kind: 'file' };
  if (existsSync(join(path, 'spiderplane.json'))) return { data: zipFolder(path), project: basename(path), kind: 'generic' };
  const cfgPath = join(path, 'scrapy.cfg');
  if (!existsSync(cfgPath)) throw new Error(`${path} has neither spiderplane.json (generic package) nor scrapy.cfg (Scrapy project)`);
  const cfg = readFileSync(cfgPath, 'utf8');
  const settings = iniValue(cfg, 'settings', 'default');
  if (!settings) throw new Error(`${cfgPath} has no [settings] default = yourproject.settings`);
  const project = iniValue(cfg, 'deploy', 'project') ?? settings.split('.')[0]!;
  const work = mkdtempSync(join(tmpdir(), 'spiderplane-egg-'));
  const src = join(work, 'src');
  const out = join(work, 'dist');
  try {
    cpSync(path, src, { recursive: true, filter: (p) => !SKIP.has(basename(p)) || p === path });
    if (!existsSync(join(src, 'setup.py'))) {
      // scrapyd-deploy's template
      writeFileSync(join(src, 'setup.py'), `from setuptools import setup, find_packages\n\nsetup(\n    name='project',\n    version='1.0',\n    packages=find_packages(),\n    entry_points={'scrapy': ['settings = ${settings}']},\n)\n`);
    }
    await run(python, ['setup.py', 'bdist_egg', '-d', out], { cwd: src, timeout: 300_000, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
    const egg = readdirSync(out).find((f) => f.endsWith('.egg'));
    if (!egg) throw new Error('setup.py bdist_egg made no .egg');
    return { data: withRequirements(readFileSync(join(out, egg)), path), project, kind: 'scrapy-egg' };
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`building the egg failed: ${err.stderr?.trim() || err.message}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

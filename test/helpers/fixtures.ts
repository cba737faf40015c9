// Test fixtures: a real Scrapy egg (built the scrapyd-deploy way) and a
// generic zip package of Node spiders.
import { execFile } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import AdmZip from 'adm-zip'

const execFileP = promisify(execFile)

/** Debian's Python with Scrapy 2.8; never rely on `python3` from PATH. */
export const PYTHON = '/usr/bin/python3'

const HERE = path.dirname(fileURLToPath(import.meta.url))
export const FIXTURES_DIR = path.resolve(HERE, '..', 'fixtures')
export const SCRAPY_PROJECT_DIR = path.join(FIXTURES_DIR, 'scrapy_project')
export const NODE_PACKAGE_DIR = path.join(FIXTURES_DIR, 'node_package')

/** The Scrapy project name (module) inside the demo egg. */
export const DEMO_PROJECT = 'demo'
export const DEMO_SETTINGS_MODULE = 'demo.settings'
export const DEMO_SPIDERS = ['broken', 'ignoresigint', 'quick', 'slow'] as const
export const NODE_SPIDERS = ['count', 'crash', 'hello', 'shell'] as const

// One egg build per process; every caller gets its own copy in its outDir.
let eggBuild: Promise<{ egg: Buffer; name: string }> | undefined

async function buildEggOnce(): Promise<{ egg: Buffer; name: string }> {
  // run_suite.ts builds it once for the whole suite.
  const prebuilt = process.env.SPIDERPLANE_TEST_DEMO_EGG
  if (prebuilt) return { egg: await fsp.readFile(prebuilt), name: path.basename(prebuilt) }
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'spiderplane-egg-'))
  try {
    const src = path.join(tmp, 'project')
    await fsp.cp(SCRAPY_PROJECT_DIR, src, {
      recursive: true,
      filter: (p) => !/(^|[/\\])(__pycache__|build|dist|[^/\\]*\.egg-info)$/.test(p),
    })
    const dist = path.join(tmp, 'dist')
    try {
      await execFileP(PYTHON, ['setup.py', 'bdist_egg', '-d', dist], {
        cwd: src,
        env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
        maxBuffer: 16 * 1024 * 1024,
      })
    } catch (err) {
      const e = err as Error & { stderr?: string; stdout?: string }
      throw new Error(
        `building the demo egg failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`,
      )
    }
    const eggs = (await fsp.readdir(dist)).filter((f) => f.endsWith('.egg'))
    if (eggs.length !== 1) throw new Error(`expected one .egg in ${dist}, got ${eggs.join(', ')}`)
    const name = eggs[0] as string
    return { egg: await fsp.readFile(path.join(dist, name)), name }
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true })
  }
}

/**
 * Builds the demo Scrapy project into an egg with `python3 setup.py bdist_egg`
 * (what scrapyd-deploy runs) and writes it into outDir. Returns its path,
 * e.g. `<outDir>/project-1.0-py3.11.egg`. Built once per process.
 */
export async function buildDemoEgg(outDir: string): Promise<string> {
  if (!eggBuild) {
    eggBuild = buildEggOnce()
    // Do not cache a failure: a later call may retry.
    eggBuild.catch(() => {
      eggBuild = undefined
    })
  }
  const { egg, name } = await eggBuild
  await fsp.mkdir(outDir, { recursive: true })
  const out = path.join(outDir, name)
  await fsp.writeFile(out, egg)
  return out
}

/** Writes a zip made of `files` (zip path -> content) to outPath. */
export async function buildZip(outPath: string, files: Record<string, string | Buffer>): Promise<string> {
  const zip = new AdmZip()
  for (const [name, content] of Object.entries(files)) {
    zip.addFile(name, typeof content === 'string' ? Buffer.from(content, 'utf8') : content)
  }
  await fsp.mkdir(path.dirname(outPath), { recursive: true })
  await fsp.writeFile(outPath, zip.toBuffer())
  return outPath
}

/** Reads every regular file under dir, keyed by its '/'-separated relative path. */
async function readTree(dir: string, prefix = ''): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {}
  for (const ent of await fsp.readdir(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${ent.name}` : ent.name
    const abs = path.join(dir, ent.name)
    if (ent.isDirectory()) Object.assign(out, await readTree(abs, rel))
    else if (ent.isFile()) out[rel] = await fsp.readFile(abs)
  }
  return out
}

/**
 * Zips test/fixtures/node_package (spiderplane.json at the zip root) into
 * `<outDir>/node_package.zip` and returns that path.
 */
export async function buildNodePackage(outDir: string): Promise<string> {
  const files = await readTree(NODE_PACKAGE_DIR)
  return buildZip(path.join(outDir, 'node_package.zip'), files)
}

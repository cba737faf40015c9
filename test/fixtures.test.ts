// Proves the test fixtures work the way the slave will use them.
// Run: cd /work/main && npx tsx --test test/fixtures.test.ts
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import AdmZip from 'adm-zip'
import {
  PYTHON,
  DEMO_SETTINGS_MODULE,
  DEMO_SPIDERS,
  NODE_SPIDERS,
  buildDemoEgg,
  buildNodePackage,
  buildZip,
} from './helpers/fixtures.ts'

let tmp = ''
let egg = ''

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'spiderplane-fixtures-test-'))
  egg = await buildDemoEgg(path.join(tmp, 'eggs'))
})

after(async () => {
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true })
})

interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  out: string
}

function collect(child: ChildProcess): Promise<RunResult> {
  let out = ''
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()))
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, out }))
  })
}

/** Starts scrapy from the egg exactly like the slave will: empty cwd, egg on PYTHONPATH. */
function spawnScrapy(cwd: string, args: string[], extraEnv: Record<string, string> = {}): ChildProcess {
  return spawn(PYTHON, ['-m', 'scrapy', ...args], {
    cwd,
    env: {
      ...process.env,
      PYTHONPATH: egg,
      SCRAPY_SETTINGS_MODULE: DEMO_SETTINGS_MODULE,
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

async function emptyDir(name: string): Promise<string> {
  const dir = path.join(tmp, name)
  await fsp.mkdir(dir, { recursive: true })
  return dir
}

async function readJsonLines(file: string): Promise<Record<string, unknown>[]> {
  const text = await fsp.readFile(file, 'utf8')
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

/** Resolves once `pattern` appears in the child's combined output. */
function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs = 60_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = ''
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`timed out waiting for ${pattern}; output so far:\n${seen}`))
    }, timeoutMs)
    const onData = (d: Buffer): void => {
      seen += d.toString()
      if (pattern.test(seen)) {
        cleanup()
        resolve()
      }
    }
    const cleanup = (): void => {
      clearTimeout(timer)
      child.stdout?.off('data', onData)
      child.stderr?.off('data', onData)
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
  })
}

test('the demo egg is a zip with the scrapy settings entry point', () => {
  assert.match(path.basename(egg), /^project-1\.0-py3\.\d+\.egg$/)
  const zip = new AdmZip(egg)
  const names = zip.getEntries().map((e) => e.entryName)
  for (const n of ['EGG-INFO/entry_points.txt', 'demo/settings.py', 'demo/spiders/quick.py']) {
    assert.ok(names.includes(n), `${n} missing from egg: ${names.join(', ')}`)
  }
  const ep = zip.readAsText('EGG-INFO/entry_points.txt')
  assert.match(ep, /^\[scrapy\]$/m)
  assert.match(ep, /^settings = demo\.settings$/m)
})

test('buildDemoEgg reuses one build per process', async () => {
  const again = await buildDemoEgg(path.join(tmp, 'eggs2'))
  assert.notEqual(again, egg)
  assert.deepEqual(await fsp.readFile(again), await fsp.readFile(egg))
})

test('scrapy list from the egg in an empty cwd prints the 4 spiders', async () => {
  const cwd = await emptyDir('list')
  const r = await collect(spawnScrapy(cwd, ['list']))
  assert.equal(r.code, 0, r.out)
  const lines = r.out.split('\n').map((l) => l.trim()).filter(Boolean)
  assert.deepEqual(lines, [...DEMO_SPIDERS])
  assert.deepEqual(await fsp.readdir(cwd), [], 'scrapy list should leave the cwd empty')
})

test('scrapy crawl quick gets -a args, -s settings and env, and -s FEEDS=<json> works', async () => {
  const cwd = await emptyDir('crawl-quick')
  const feed = path.join(tmp, 'quick-items.jl')
  const feeds = JSON.stringify({ [`file://${feed}`]: { format: 'jsonlines' } })
  const r = await collect(
    spawnScrapy(
      cwd,
      ['crawl', 'quick', '-a', 'foo=bar', '-a', '_job=job42', '-a', '_version=1.0',
        '-s', 'MY_SETTING=x', '-s', 'DOWNLOAD_DELAY=0.01', '-s', `FEEDS=${feeds}`],
      { SCRAPY_PROJECT: 'demo', SCRAPYD_EGG_VERSION: '1.0', SCRAPY_JOB: 'job42' },
    ),
  )
  assert.equal(r.code, 0, r.out)
  assert.match(r.out, /Stored jsonlines feed \(3 items\)/)
  const items = await readJsonLines(feed)
  assert.equal(items.length, 3)
  assert.deepEqual(items.map((i) => i.n).sort(), [1, 2, 3])
  for (const item of items) {
    assert.deepEqual(item.args, { foo: 'bar', _job: 'job42', _version: '1.0' })
    assert.deepEqual(item.settings, { DOWNLOAD_DELAY: '0.01', MY_SETTING: 'x' })
    assert.deepEqual(item.env, { SCRAPY_PROJECT: 'demo', SCRAPYD_EGG_VERSION: '1.0', SCRAPY_JOB: 'job42' })
  }
  assert.deepEqual(await fsp.readdir(cwd), [], 'crawl should not create .scrapy or other files in cwd')
})

test('broken spider yields one item and logs a Python traceback', async () => {
  const cwd = await emptyDir('crawl-broken')
  const r = await collect(spawnScrapy(cwd, ['crawl', 'broken']))
  assert.equal(r.code, 0, 'scrapy exits 0 even when a callback raised')
  assert.match(r.out, /ERROR: Spider error processing <GET data:,broken>/)
  assert.match(r.out, /Traceback \(most recent call last\):/)
  assert.match(r.out, /RuntimeError: boom from broken spider/)
  assert.match(r.out, /'item_scraped_count': 1/)
})

test('slow spider stops gracefully and promptly on SIGINT', async () => {
  const cwd = await emptyDir('crawl-slow')
  const child = spawnScrapy(cwd, ['crawl', 'slow', '-a', 'seconds=30'])
  const done = collect(child)
  await waitForOutput(child, /slow tick 2/)
  const t0 = Date.now()
  child.kill('SIGINT')
  const r = await done
  const took = Date.now() - t0
  assert.equal(r.code, 0, r.out)
  assert.match(r.out, /Received SIGINT, shutting down gracefully/)
  assert.match(r.out, /'finish_reason': 'shutdown'/)
  assert.ok(took < 15000, `graceful stop took ${took} ms`) // ~1 s when idle; generous for a busy machine, far below the 30 s crawl
})

test('ignoresigint spider survives SIGINT and SIGTERM and dies on SIGKILL', async () => {
  const cwd = await emptyDir('crawl-ignoresigint')
  const child = spawnScrapy(cwd, ['crawl', 'ignoresigint', '-a', 'seconds=60'])
  const done = collect(child)
  await waitForOutput(child, /ignoresigint tick 1/)
  child.kill('SIGINT')
  child.kill('SIGTERM')
  await waitForOutput(child, /ignoresigint tick 3/)
  assert.equal(child.exitCode, null, 'still running after SIGINT+SIGTERM')
  child.kill('SIGKILL')
  const r = await done
  assert.equal(r.signal, 'SIGKILL')
  assert.doesNotMatch(r.out, /Received SIG(INT|TERM)/)
})

test('node package zip has spiderplane.json at its root and its spiders follow the contract', async () => {
  const zipPath = await buildNodePackage(path.join(tmp, 'pkgs'))
  const zip = new AdmZip(zipPath)
  const manifestEntry = zip.getEntry('spiderplane.json')
  assert.ok(manifestEntry, 'spiderplane.json must be at the zip root')
  const manifest = JSON.parse(zip.readAsText('spiderplane.json')) as {
    spiders: Record<string, { command: string | string[] }>
  }
  assert.deepEqual(Object.keys(manifest.spiders).sort(), [...NODE_SPIDERS])

  const dir = path.join(tmp, 'pkg-extracted')
  zip.extractAllTo(dir, true)
  const run = async (spider: string, args: Record<string, string>): Promise<RunResult & { items: Record<string, unknown>[] }> => {
    const itemsFile = path.join(tmp, `${spider}-items.jl`)
    const entry = manifest.spiders[spider]
    assert.ok(entry)
    const argv = Object.entries(args).map(([k, v]) => `--${k}=${v}`)
    const env = {
      ...process.env,
      SPIDERPLANE_ITEMS_FILE: itemsFile,
      SPIDERPLANE_ARGS: JSON.stringify(args),
      SPIDERPLANE_SETTINGS: JSON.stringify({ MY_SETTING: 'y' }),
      SPIDERPLANE_JOB: `job-${spider}`,
      SPIDERPLANE_PROJECT: 'nodeproj',
      SPIDERPLANE_SPIDER: spider,
      SPIDERPLANE_VERSION: 'v1',
    }
    const child =
      typeof entry.command === 'string'
        ? spawn('/bin/sh', ['-c', entry.command, 'sh', ...argv], { cwd: dir, env })
        : spawn(entry.command[0] === 'node' ? process.execPath : (entry.command[0] as string),
          [...entry.command.slice(1), ...argv], { cwd: dir, env })
    const r = await collect(child)
    const items = await readJsonLines(itemsFile).catch(() => [])
    return { ...r, items }
  }

  const hello = await run('hello', { foo: 'bar' })
  assert.equal(hello.code, 0, hello.out)
  assert.equal(hello.items.length, 2)
  assert.deepEqual(hello.items[0]?.args, { foo: 'bar' })
  assert.deepEqual(hello.items[0]?.argv, { foo: 'bar' })
  assert.deepEqual(hello.items[0]?.settings, { MY_SETTING: 'y' })
  assert.equal((hello.items[0]?.env as Record<string, unknown>).SPIDERPLANE_JOB, 'job-hello')

  const crash = await run('crash', {})
  assert.equal(crash.code, 1)
  assert.equal(crash.items.length, 1)
  assert.match(crash.out, /TypeError: boom from crash spider\n\s+at /)

  const count = await run('count', { n: '3', interval_ms: '20' })
  assert.equal(count.code, 0, count.out)
  assert.equal(count.items.length, 3)

  const shell = await run('shell', {})
  assert.equal(shell.code, 0, shell.out)
  assert.match(shell.out, /shell spider job-shell/)
  assert.deepEqual(shell.items, [{ via: 'sh' }])
})

test('buildZip writes the given files', async () => {
  const p = await buildZip(path.join(tmp, 'misc', 'x.zip'), { 'a.txt': 'A', 'dir/b.bin': Buffer.from([1, 2]) })
  const zip = new AdmZip(p)
  assert.equal(zip.readAsText('a.txt'), 'A')
  assert.deepEqual(zip.readFile('dir/b.bin'), Buffer.from([1, 2]))
})

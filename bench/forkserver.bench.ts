// The warm Python start (the forkserver, on by default): prints numbers, asserts nothing.
// Run: npx tsx bench/forkserver.bench.ts [first|forty]
// For each way (spawn: --no-forkserver, forkserver): schedule.json -> the first request in the job's log (the demo
// egg's `quick` spider at LOG_LEVEL DEBUG, its log file read every 2 ms), 15 jobs one after another,
// with where the time goes (the log's own timestamps: Scrapy started, spider opened, first request);
// then 40 quick jobs at max_proc 4, beside the machine's CPU floor (the CPU seconds the slave, its keepers
// and spiders used, spread over every core: no scheduler could finish sooner). Scrapyd polls its queue every 5 s
// (its published poll_interval), so its schedule -> start alone is 0-5 s, median ~2.5 s.
import { readFileSync, existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { processTree } from './proc_usage.ts';
import { join } from 'node:path';
import { buildDemoEgg } from '../test/helpers/fixtures.ts';
import { getJson, postForm, startSlave, uploadEgg, waitFor, type SlaveHandle } from '../test/helpers/slave_process.ts';

const only = process.argv[2];
const want = (name: string) => !only || only === name;
const pct = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))]!;

/**
 * CPU seconds used by the slave and everything it started: live processes of its tree, plus the
 * children each one already reaped (cutime/cstime) — the spiders, keepers and forkservers. Other
 * sessions on a shared machine do not count.
 */
function slaveCpuSeconds(pid: number): number {
  return processTree(pid).reduce((sum, p) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return sum + (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
    } catch { return sum; }
  }, 0);
}

async function slaveFor(mode: 'spawn' | 'forkserver', maxProc: number): Promise<SlaveHandle> {
  const slave = await startSlave({ args: ['--max-proc', String(maxProc), ...(mode === 'forkserver' ? ['--forkserver'] : ['--no-forkserver'])] });
  await uploadEgg(slave.url, 'demo', '1', readFileSync(await buildDemoEgg(slave.dataDir)));
  if (mode === 'forkserver') await waitFor('forkserver ready', () => (/forkserver ready for /.test(slave.output()) ? true : undefined), 60_000, 20);
  return slave;
}

async function firstRequest(): Promise<void> {
  console.log('schedule.json -> first request in the log (quick spider, data: URI), 15 jobs one after another; Scrapyd: its 5 s poll alone, median ~2 500 ms');
  for (const mode of ['spawn', 'forkserver'] as const) {
    const slave = await slaveFor(mode, 4);
    try {
      const times: number[] = [];
      const phases: Record<'answered' | 'started' | 'opened' | 'first', number[]> = { answered: [], started: [], opened: [], first: [] };
      for (let i = 0; i < 15; i++) {
        const t0 = performance.now();
        const epoch0 = Date.now();
        const { jobid } = (await postForm(slave.url, '/schedule.json', [['project', 'demo'], ['spider', 'quick'], ['setting', 'LOG_LEVEL=DEBUG'], ['setting', 'LOG_FORMAT=%(created).3f [%(name)s] %(levelname)s: %(message)s']])) as { jobid: string };
        phases.answered.push(performance.now() - t0);
        const log = join(slave.dataDir, 'logs', 'demo', 'quick', `${jobid}.log`);
        times.push(await waitFor('first request', () => (existsSync(log) && readFileSync(log, 'utf8').includes('Crawled (200) <GET data:,quick-1>') ? performance.now() - t0 : undefined), 60_000, 2));
        await waitFor('finished', async () => ((await getJson(slave.url, '/status.json', { job: jobid })).currstate === 'finished' ? true : undefined), 60_000, 10);
        const lines = readFileSync(log, 'utf8').split('\n');
        const at = (marker: string) => { const l = lines.find((x) => x.includes(marker)); return l ? parseFloat(l) * 1000 - epoch0 : NaN; };
        phases.started.push(at(' started (bot: '));
        phases.opened.push(at('Spider opened'));
        phases.first.push(at('Crawled (200) <GET data:,quick-1>'));
      }
      console.log(`  ${mode.padEnd(10)} median ${pct(times, 50).toFixed(0)} ms, p95 ${pct(times, 95).toFixed(0)} ms, min ${Math.min(...times).toFixed(0)} ms`);
      console.log(`  ${''.padEnd(10)} where it goes (medians from schedule.json, ms): answered ${pct(phases.answered, 50).toFixed(0)}, Scrapy started ${pct(phases.started, 50).toFixed(0)} (keeper, fork or spawn, imports), spider opened ${pct(phases.opened, 50).toFixed(0)} (crawler and engine set-up), first request logged ${pct(phases.first, 50).toFixed(0)}`);
    } finally {
      await slave.stop();
    }
  }
}

async function forty(): Promise<void> {
  console.log(`40 quick Scrapy jobs at max_proc 4 on ${cpus().length} cores (CPU floor: CPU seconds the slave and its processes used / cores)`);
  for (const mode of ['spawn', 'forkserver'] as const) {
    const slave = await slaveFor(mode, 4);
    try {
      const cpu0 = slaveCpuSeconds(slave.proc.pid!);
      const t0 = performance.now();
      for (let i = 0; i < 40; i++) await postForm(slave.url, '/schedule.json', { project: 'demo', spider: 'quick' });
      await waitFor('all finished', async () => {
        const s = await getJson(slave.url, '/daemonstatus.json');
        return s.finished === 40 && s.running === 0 && s.pending === 0 ? true : undefined;
      }, 600_000, 20);
      const wall = (performance.now() - t0) / 1000;
      const cpu = slaveCpuSeconds(slave.proc.pid!) - cpu0;
      const floor = cpu / cpus().length;
      console.log(`  ${mode.padEnd(10)} ${wall.toFixed(2)} s wall; ${cpu.toFixed(1)} CPU s used -> floor ${floor.toFixed(2)} s; wall / floor ${(wall / floor).toFixed(2)}x; ${(cpu / 40 * 1000).toFixed(0)} ms CPU per job`);
    } finally {
      await slave.stop();
    }
  }
}

if (want('first')) await firstRequest();
if (want('forty')) await forty();

// The event-loop lag monitor (common/event_loop_lag.ts): a stall is seen while it is still going
// on, counted once it is over, and shows in the window's maximum. Each stall here is made by the
// test (the loop held busy, or the process stopped) and only lower bounds are asserted: a busy
// machine can only make a stall longer.
// Run: npx tsx --test test/event_loop_lag.test.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventLoopLag, STALL_MS } from '../common/event_loop_lag.ts';
import { ROOT } from './helpers/daemon_process.ts';

function holdLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* the stall */ }
}

test('a stall shows while it is going on, then in the total and the maximum', async () => {
  const lag = new EventLoopLag().start();
  try {
    await sleep(100);
    const before = lag.stalledMs();
    holdLoop(3 * STALL_MS);
    // Still inside the stall: the sampler has not run, yet the stall is already counted.
    assert.ok(lag.stalledMs() - before >= 2 * STALL_MS, `in progress: ${lag.stalledMs() - before}`);
    await sleep(100); // the sampler runs
    const after = lag.stalledMs();
    assert.ok(after - before >= 2 * STALL_MS, `after: ${after - before}`);
    const f = lag.figures();
    assert.ok(f.max_ms >= 2 * STALL_MS, JSON.stringify(f));
    assert.ok(f.p50_ms <= f.p99_ms && f.p99_ms <= f.max_ms, JSON.stringify(f));
    assert.equal(f.window_seconds, 60);
    assert.equal(f.stall_threshold_ms, STALL_MS);
    // The total never goes back.
    await sleep(100);
    assert.ok(lag.stalledMs() >= after);
  } finally {
    lag.stop();
  }
});

test('holds shorter than the stall threshold are lag, not stalls: they never add up to stalled time', async () => {
  const lag = new EventLoopLag(20, 1000).start(); // a stall is 1 s or more at a time
  try {
    await sleep(50);
    const before = lag.stalledMs();
    for (let i = 0; i < 5; i++) { // 1.5 s held in all, never 1 s at a time
      holdLoop(300);
      await sleep(30);
    }
    assert.equal(lag.stalledMs(), before);
    assert.ok(lag.figures().max_ms >= 250, JSON.stringify(lag.figures())); // but each hold is lag
  } finally {
    lag.stop();
  }
});

test('a process stopped with SIGSTOP sees the stop as a stall once it runs again', async () => {
  // A child that reports its stalled total on each line of stdin.
  const code = `import { eventLoopLag } from ${JSON.stringify(`${ROOT}/common/event_loop_lag.ts`)};
    const lag = eventLoopLag();
    process.stdin.on('data', () => console.log(JSON.stringify(lag.figures())));
    console.log('ready');`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const nextLine = async (n: number) => {
      await waitLines(() => out, n);
      return out.trim().split('\n')[n - 1]!;
    };
    assert.equal(await nextLine(1), 'ready');
    child.stdin.write('\n');
    const first = JSON.parse(await nextLine(2)) as { stalled_ms_total: number };
    child.kill('SIGSTOP');
    await sleep(1000);
    child.kill('SIGCONT');
    child.stdin.write('\n');
    const second = JSON.parse(await nextLine(3)) as { stalled_ms_total: number; max_ms: number };
    assert.ok(second.stalled_ms_total - first.stalled_ms_total >= 900, JSON.stringify({ first, second }));
    assert.ok(second.max_ms >= 900, JSON.stringify(second));
  } finally {
    child.kill('SIGKILL');
  }
});

async function waitLines(text: () => string, n: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (text().trim().split('\n').filter(Boolean).length < n) {
    if (Date.now() > deadline) throw new Error(`no line ${n} in 60 s: ${text()}`);
    await sleep(20);
  }
}

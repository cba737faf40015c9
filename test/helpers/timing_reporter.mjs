// A node:test reporter (test/run_suite.ts, SPIDERPLANE_TEST_TIMING=FILE): when each test file
// started and ended, seconds from the run's start, to keep run_suite's weights and order honest.
export default async function* timing(source) {
  const t0 = Date.now();
  const files = new Map();
  for await (const ev of source) {
    const name = ev.data?.name;
    if (!name || name !== ev.data?.file) continue; // the file-level entries only
    const t = (Date.now() - t0) / 1000;
    const r = files.get(name) ?? { start: t, end: t };
    if (ev.type === 'test:dequeue') r.start = t;
    if (ev.type === 'test:complete') r.end = t;
    files.set(name, r);
  }
  yield 'start   end  wall file\n';
  for (const [f, r] of [...files].sort((a, b) => a[1].start - b[1].start)) {
    yield `${r.start.toFixed(1).padStart(5)} ${r.end.toFixed(1).padStart(5)} ${(r.end - r.start).toFixed(1).padStart(5)} ${f.replace(/.*spiderplane-suite-[^/]*\/run\/\d+-/, '')}\n`;
  }
}

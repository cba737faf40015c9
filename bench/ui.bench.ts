// Web UI render time with 100 000 runs in the master's history. Prints numbers, asserts nothing.
// Server-side time is the master's own Server-Timing header (request in, page rendered).
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { startMaster, ADMIN } from '../test/helpers/master_process.ts';
import { tempDir } from '../test/helpers/slave_process.ts';

const dataDir = tempDir('spiderplane-uibench-');
let master = await startMaster({ dataDir });
await master.stop();
const db = new Database(join(dataDir, 'master.db'));
const states = ['finished', 'finished', 'finished', 'finished', 'failed', 'lost'];
const insert = db.prepare(`INSERT INTO runs (job, project, spider, version, node_id, node, state, outcome, created_at, dispatched_at, started_at, ended_at, items_count, error_count)
                           VALUES (?, ?, ?, '1', 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
const now = Date.now();
db.transaction(() => {
  for (let i = 0; i < 100_000; i++) {
    const state = states[i % states.length]!;
    const t = now - (100_000 - i) * 30_000;
    insert.run(randomBytes(16).toString('hex'), `project${i % 40}`, `spider${i % 9}`, `node${i % 12}`, state, state === 'finished' ? 'succeeded' : state, t, t, t + 1000, t + 60_000, i % 500, i % 7);
  }
})();
db.close();
master = await startMaster({ dataDir });
try {
  // Log in through the form, as a browser does.
  const loginPage = await fetch(`${master.url}/login`);
  const csrfCookie = /sp_login_csrf=([^;]+)/.exec(loginPage.headers.get('set-cookie') ?? '')![1]!;
  const token = /name="_csrf" value="([^"]+)"/.exec(await loginPage.text())![1]!;
  const login = await fetch(`${master.url}/login`, {
    method: 'POST', redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: `sp_login_csrf=${csrfCookie}` },
    body: new URLSearchParams({ username: ADMIN.user, password: ADMIN.password, _csrf: token, next: '/' }),
  });
  const session = /sp_session=([^;]+)/.exec(login.headers.get('set-cookie') ?? '')![1]!;
  const pages = ['/', '/jobs', '/jobs?state=failed', '/jobs?project=project7&spider=spider3', '/jobs?offset=50000', '/nodes', '/projects', '/schedules'];
  console.log('page render time with 100 000 runs in history (server side, median of 20 after 3 warm-ups):');
  for (const path of pages) {
    const times: number[] = [];
    for (let i = 0; i < 23; i++) {
      const r = await fetch(master.url + path, { headers: { Cookie: `sp_session=${session}` } });
      await r.arrayBuffer();
      if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status}`);
      if (i >= 3) times.push(Number(/dur=([\d.]+)/.exec(r.headers.get('server-timing') ?? '')![1]));
    }
    times.sort((a, b) => a - b);
    console.log(`  ${path.padEnd(40)} median ${times[10]!.toFixed(1)} ms, worst ${times[19]!.toFixed(1)} ms`);
  }
} finally {
  await master.stop();
}

// Guessing passwords through HTTP basic auth meets the same limit as the login page.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, basic, startMaster, type MasterHandle } from './helpers/master_process.ts';

let master: MasterHandle;

before(async () => {
  master = await startMaster();
  const r = await master.api('POST', '/api/users', { username: 'alice', password: 'alice-password-1', role: 'viewer' });
  assert.equal(r.status, 201);
});

after(async () => {
  await master.stop();
});

test('wrong basic-auth passwords for one user are limited (429 with Retry-After), other users are not', async () => {
  const statuses: number[] = [];
  let retryAfter: string | null = null;
  for (let i = 0; i < 8; i++) {
    const r = await fetch(`${master.url}/api/nodes`, { headers: { Authorization: basic('alice', `wrong-${i}`) } });
    statuses.push(r.status);
    if (r.status === 429) retryAfter = r.headers.get('Retry-After');
    await r.arrayBuffer();
  }
  assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401], 'the first tries are plain refusals');
  assert.ok(statuses.slice(5).includes(429), `later tries are limited: ${statuses.join(',')}`);
  assert.match(retryAfter ?? '', /^\d+$/);
  // Even the right password waits while the limit holds: that is what stops guessing.
  const right = await fetch(`${master.url}/api/nodes`, { headers: { Authorization: basic('alice', 'alice-password-1') } });
  assert.equal(right.status, 429);
  // Another user from the same address is not locked out by alice's failures.
  const admin = await fetch(`${master.url}/api/nodes`, { headers: { Authorization: basic(ADMIN.user, ADMIN.password) } });
  assert.equal(admin.status, 200);
});

// Parallel guesses: the attempt is counted before the asynchronous bcrypt, so a burst meets the same
// budget (5 per user) as guesses sent one by one. Each test comes from its own client address
// (X-Forwarded-For, believed from loopback by default), so one burst does not lock the next test out.
const BURST = 60;
const BUDGET = 5;

async function createUser(name: string): Promise<string> {
  const password = `${name}-password-1`;
  const r = await master.api('POST', '/api/users', { username: name, password, role: 'operator' });
  assert.equal(r.status, 201);
  return password;
}

function tally(statuses: number[]): { evaluated: number; limited: number } {
  const evaluated = statuses.filter((s) => s === 401).length;
  const limited = statuses.filter((s) => s === 429).length;
  assert.equal(evaluated + limited, statuses.length, `only 401 and 429 expected: ${statuses.join(',')}`);
  return { evaluated, limited };
}

test(`${BURST} parallel wrong passwords on the login page: at most ${BUDGET} are checked, the rest get 429 at once`, async () => {
  const password = await createUser('bob');
  const page = await fetch(`${master.url}/login`);
  const token = /name="_csrf" value="([^"]*)"/.exec(await page.text())![1]!;
  const cookie = page.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  const login = async (pw: string) => {
    const r = await fetch(`${master.url}/login`, {
      method: 'POST', redirect: 'manual',
      headers: { Cookie: cookie, 'Content-Type': 'application/x-www-form-urlencoded', 'X-Forwarded-For': '10.0.0.1' },
      body: new URLSearchParams({ _csrf: token, username: 'bob', password: pw, next: '/' }),
    });
    await r.arrayBuffer();
    return r.status;
  };
  const { evaluated, limited } = tally(await Promise.all(Array.from({ length: BURST }, (_, i) => login(`wrong-${i}`))));
  assert.ok(evaluated <= BUDGET, `${evaluated} guesses were checked`);
  assert.ok(limited >= BURST - BUDGET);
  assert.equal(await login(password), 429, 'the right password is refused while the limit holds');
});

test(`${BURST} parallel wrong basic-auth passwords on the API and on the Scrapyd facade: at most ${BUDGET} checked each`, async () => {
  for (const [user, path, ip] of [['carol', '/api/nodes', '10.0.0.2'], ['dave', '/listprojects.json', '10.0.0.3']] as const) {
    const password = await createUser(user);
    const call = async (pw: string) => {
      const r = await fetch(`${master.url}${path}`, { headers: { Authorization: basic(user, pw), 'X-Forwarded-For': ip } });
      await r.arrayBuffer();
      return r.status;
    };
    const { evaluated } = tally(await Promise.all(Array.from({ length: BURST }, (_, i) => call(`wrong-${i}`))));
    assert.ok(evaluated <= BUDGET, `${path}: ${evaluated} guesses were checked`);
    assert.equal(await call(password), 429, `${path}: the right password is refused while the limit holds`);
  }
});

test('a burst of parallel calls with the right password (a Scrapyd client) is not limited', async () => {
  const password = await createUser('erin');
  const statuses = await Promise.all(Array.from({ length: 20 }, async () => {
    const r = await fetch(`${master.url}/listprojects.json`, { headers: { Authorization: basic('erin', password), 'X-Forwarded-For': '10.0.0.4' } });
    await r.arrayBuffer();
    return r.status;
  }));
  assert.deepEqual([...new Set(statuses)], [200]);
});

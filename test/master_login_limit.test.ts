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

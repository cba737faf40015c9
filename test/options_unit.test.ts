// The master's options: defaults, flags over the environment, and a number out of its range refused
// with the flag named (here the bcrypt cost, 4–15).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadMasterConfig } from '../master/config.ts';
import { OptionError } from '../common/options.ts';

test('bcrypt cost: 12 by default, from the environment or a flag, refused outside 4–15', () => {
  assert.equal(loadMasterConfig([], {}).bcryptRounds, 12);
  assert.equal(loadMasterConfig([], { SPIDERPLANE_BCRYPT_ROUNDS: '4' }).bcryptRounds, 4);
  assert.equal(loadMasterConfig(['--bcrypt-rounds', '13'], { SPIDERPLANE_BCRYPT_ROUNDS: '4' }).bcryptRounds, 13);
  assert.throws(() => loadMasterConfig(['--bcrypt-rounds', '3'], {}), (e: Error) => e instanceof OptionError && /--bcrypt-rounds: 3 is below the minimum 4/.test(e.message));
  assert.throws(() => loadMasterConfig(['--bcrypt-rounds', '16'], {}), (e: Error) => e instanceof OptionError && /--bcrypt-rounds: 16 is above the maximum 15/.test(e.message));
  assert.throws(() => loadMasterConfig(['--bcrypt-rounds', '12.5'], {}), OptionError);
});

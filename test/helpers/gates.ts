// Gates for the fixture `count` spider (hold_dir / hold_at): a test keeps a spider running for as
// long as it needs it and lets it go with release(), instead of hoping a timed spider is still
// running when the test gets there.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Gate {
  dir: string;
  /** The count spider's arguments: hold after each of these item counts. */
  args: (...at: number[]) => Record<string, string>;
  /** Opens the gate at `at` items (the spider goes on at its next tick). */
  release: (at: number) => void;
}

export function gate(): Gate {
  const dir = mkdtempSync(join(tmpdir(), 'spiderplane-gate-'));
  // A spider may run as another user (the daemon's --run-as): it only needs to see the files.
  chmodSync(dir, 0o755);
  return {
    dir,
    args: (...at) => ({ hold_dir: dir, hold_at: at.join(',') }),
    release: (at) => writeFileSync(join(dir, `release-${at}`), ''),
  };
}

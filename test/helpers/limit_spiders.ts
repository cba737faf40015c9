// A generic package of spiders that break limits, for the run-limits and retry tests:
// hang (waits forever, ignoring SIGTERM), hog (a shell that starts a Python child growing to
// --mib MiB), fail (exits 1 at once), nicecheck (waits forever, honours SIGTERM).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildZip } from './fixtures.ts';

export const LIMIT_SPIDER_FILES: Record<string, string> = {
  'spiderplane.json': JSON.stringify({
    spiders: {
      hang: { command: ['node', 'hang.js'] },
      // A shell with a Python child: the memory is in a descendant, not in the group leader.
      hog: { command: '/usr/bin/python3 hog.py & wait' },
      fail: { command: ['node', 'fail.js'] },
      idle: { command: ['node', 'idle.js'] },
    },
  }),
  'hang.js': `'use strict'
process.on('SIGTERM', () => console.log('hang got SIGTERM, ignoring it'))
console.log('hang: waiting forever')
setInterval(() => {}, 1000)
`,
  'idle.js': `'use strict'
console.log('idle: waiting for a signal')
setInterval(() => {}, 1000)
`,
  'fail.js': `'use strict'
console.log('fail spider: failing on purpose')
process.exit(1)
`,
  'hog.py': `import os, sys, time
mib = 200
chunks = []
page = os.sysconf('SC_PAGE_SIZE')
def rss_mib(pid):
    with open('/proc/%s/statm' % pid) as f:
        return int(f.read().split()[1]) * page / 1048576
def tree_mib():
    # What the slave counts: this process and its parent shell (the breach may come from the sum).
    try:
        return rss_mib('self') + rss_mib(os.getppid())
    except OSError:
        return rss_mib('self')
crossed = False
while True:
    if len(chunks) * 8 < mib:
        chunks.append(b'x' * (8 * 1048576))
    r = tree_mib()
    if not crossed and r > 64:
        crossed = True
        print('hog crossed 64 MiB at %.3f' % time.time(), flush=True)
    time.sleep(0.05)
`,
};

export async function buildLimitPackage(dir: string): Promise<Buffer> {
  return readFile(await buildZip(join(dir, 'limit_spiders.zip'), LIMIT_SPIDER_FILES));
}

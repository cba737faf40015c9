// The master with a long history, as a real process: listjobs.json?project= gives the project's
// newest 100 even when other projects are busier; counts are exact across a restart; the history
// retention (--history-days, --history-max-runs) deletes old ended runs at start and never an
// active one. The history is filled directly in the database before the master starts.
// Run: npx tsx --test test/master_history.test.ts
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { SqlDb } from '../master/store/sql_db.ts';
import { databaseOfDataDir, openDatabaseOf, startMaster, type MasterHandle } from './helpers/master_process.ts';
import { fillRunsSql } from './helpers/run_fill.ts';
import { tempDir, waitFor } from './helpers/slave_process.ts';

const DAY = 24 * 3600_000;

/** The master's database (SQLite or PostgreSQL, as the suite runs), filled before it starts. */
async function prefill(dir: string, fill: (db: SqlDb) => Promise<void>): Promise<void> {
  const db = await openDatabaseOf({ database: await databaseOfDataDir(dir), dataDir: dir });
  try {
    for (const p of ['quiet', 'busy']) {
      await db.run(`INSERT INTO versions (project, version, kind, size, sha256, uploaded_at) VALUES (?, '1', 'generic', 1, 'x', ?)`, [p, Date.now()]);
    }
    await fill(db);
  } finally {
    await db.close();
  }
}

async function scrapyd(master: MasterHandle, path: string): Promise<Record<string, unknown>> {
  const r = await master.api<Record<string, unknown>>('GET', path);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

describe('master history', () => {
  test("listjobs.json?project= lists the project's newest 100 finished, however busy the other projects are", async () => {
    const dir = tempDir('spiderplane-history-list-');
    const now = Date.now();
    await prefill(dir, async (db) => {
      await fillRunsSql(db, { count: 150, project: () => 'quiet', endedAt: (i) => now - 5 * DAY + i * 1000 });
      await fillRunsSql(db, { count: 3000, project: () => 'busy', endedAt: (i) => now - DAY + i * 10 });
    });
    const master = await startMaster({ dataDir: dir });
    try {
      const quiet = await scrapyd(master, '/listjobs.json?project=quiet') as { finished: Array<{ project: string; id: string }> };
      assert.equal(quiet.finished.length, 100);
      assert.ok(quiet.finished.every((j) => j.project === 'quiet'));
      assert.equal(quiet.finished[0]!.id, `job${(150).toString(16).padStart(8, '0')}`, 'newest first');
      const all = await scrapyd(master, '/listjobs.json') as { finished: Array<{ project: string }> };
      assert.equal(all.finished.length, 100);
      assert.ok(all.finished.every((j) => j.project === 'busy'));
      const status = await master.api<{ runs: Record<string, number> }>('GET', '/api/status');
      assert.deepEqual(status.body.runs, { finished: 3150 });
      const daemon = await scrapyd(master, '/daemonstatus.json');
      assert.deepEqual([daemon.pending, daemon.running, daemon.finished], [0, 0, 3150]);
      const runs = await master.api<{ total: number; total_exact: boolean; runs: unknown[] }>('GET', '/api/runs?project=quiet&limit=10');
      assert.deepEqual([runs.body.total, runs.body.total_exact, runs.body.runs.length], [150, true, 10]);
    } finally {
      await master.stop();
    }
  });

  test('retention at start: runs older than --history-days and beyond --history-max-runs go; active runs stay; counts stay exact', async () => {
    const dir = tempDir('spiderplane-history-retention-');
    const now = Date.now();
    await prefill(dir, async (db) => {
      await fillRunsSql(db, { count: 1500, project: () => 'busy', endedAt: (i) => now - 40 * DAY + i }); // older than 30 days: go
      await fillRunsSql(db, { count: 4, project: () => 'busy', state: () => 'running' });
      await fillRunsSql(db, { count: 2, project: () => 'busy', state: () => 'pending' });
      await fillRunsSql(db, { count: 300, project: () => 'quiet', endedAt: (i) => now - 10 * DAY + i * 1000 }); // young, but over the cap of 206
    });
    const master = await startMaster({ dataDir: dir, args: ['--history-days', '30', '--history-max-runs', '206'] });
    try {
      const status = await waitFor('retention to finish', async () => {
        const r = await master.api<{ runs: Record<string, number> }>('GET', '/api/status');
        return r.body.runs.finished === 200 ? r.body.runs : undefined;
      }, 60_000, 200);
      assert.deepEqual(status, { finished: 200, running: 4, pending: 2 });
      const quiet = await master.api<{ runs: Array<{ job: string }>; total: number }>('GET', '/api/runs?project=quiet&limit=1000');
      assert.equal(quiet.body.total, 200);
      const kept = quiet.body.runs.map((r) => r.job).sort();
      const newest = Array.from({ length: 200 }, (_, k) => `job${(1506 + 101 + k).toString(16).padStart(8, '0')}`).sort();
      assert.deepEqual(kept, newest, 'the newest 200 ended runs are kept');
    } finally {
      await master.stop();
    }
    // After a restart the counts are still exact (they live in the database, kept by triggers).
    const db = await openDatabaseOf({ database: await databaseOfDataDir(dir), dataDir: dir });
    const counted = Object.fromEntries((await db.all<{ state: string; n: number }>(`SELECT state, COUNT(*) AS n FROM runs GROUP BY state`)).map((r) => [r.state, r.n]));
    const kept = Object.fromEntries((await db.all<{ state: string; n: number }>(`SELECT state, n FROM run_counts WHERE n > 0`)).map((r) => [r.state, r.n]));
    await db.close();
    assert.deepEqual(kept, counted);
  });
});

// Fills a master database with runs directly (one transaction, one prepared statement): history
// of any size for retention tests and the scale benchmarks, without dispatching anything.
import type { Db } from '../../common/sqlite.ts';
import type { SqlDb } from '../../master/store/sql_db.ts';

export interface FillOptions {
  count: number;
  /** Project of run i (default: 'p' + i % 5). */
  project?: (i: number) => string;
  /** State of run i (default: finished). */
  state?: (i: number) => string;
  /** ended_at of run i (default: spread over the last `spreadMs`, oldest first). */
  endedAt?: (i: number) => number;
  spreadMs?: number;
  now?: number;
  firstId?: number;
}

export function fillRuns(db: Db, o: FillOptions): void {
  const now = o.now ?? Date.now();
  const spread = o.spreadMs ?? 365 * 24 * 3600_000;
  const first = o.firstId ?? (((db.prepare(`SELECT MAX(id) AS m FROM runs`).get() as { m: number | null }).m ?? 0) + 1);
  const ins = db.prepare(`INSERT INTO runs (id, job, project, spider, version, node_id, node, state, outcome, created_at, dispatched_at, started_at, ended_at, exit_code, items_count, error_count)
    VALUES (?, ?, ?, 's', '1', 1, 'n1', ?, ?, ?, ?, ?, ?, ?, 3, 0)`);
  db.transaction(() => {
    for (let k = 0; k < o.count; k++) {
      const i = first + k;
      const state = o.state?.(i) ?? 'finished';
      const ended = ['finished', 'lost', 'failed'].includes(state) ? (o.endedAt?.(i) ?? now - spread + Math.floor((k / o.count) * spread)) : null;
      const created = (ended ?? now) - 2000;
      ins.run(i, `job${i.toString(16).padStart(8, '0')}`, o.project?.(i) ?? `p${i % 5}`, state, state === 'finished' ? 'succeeded' : state === 'lost' ? 'lost' : null,
        created, created, state === 'pending' || state === 'dispatching' ? null : created + 500, ended, ended === null ? null : 0);
    }
  })();
}

/** fillRuns on either engine (SqlDb): multi-row inserts in one transaction; PostgreSQL's id sequence follows. */
export async function fillRunsSql(db: SqlDb, o: FillOptions): Promise<void> {
  const now = o.now ?? Date.now();
  const spread = o.spreadMs ?? 365 * 24 * 3600_000;
  const first = o.firstId ?? (((await db.get<{ m: number | null }>(`SELECT MAX(id) AS m FROM runs`))?.m ?? 0) + 1);
  const rows: Array<Array<string | number | null>> = [];
  for (let k = 0; k < o.count; k++) {
    const i = first + k;
    const state = o.state?.(i) ?? 'finished';
    const ended = ['finished', 'lost', 'failed'].includes(state) ? (o.endedAt?.(i) ?? now - spread + Math.floor((k / o.count) * spread)) : null;
    const created = (ended ?? now) - 2000;
    rows.push([i, `job${i.toString(16).padStart(8, '0')}`, o.project?.(i) ?? `p${i % 5}`, state, state === 'finished' ? 'succeeded' : state === 'lost' ? 'lost' : null,
      created, created, state === 'pending' || state === 'dispatching' ? null : created + 500, ended, ended === null ? null : 0]);
  }
  await db.tx(async () => {
    for (let at = 0; at < rows.length; at += 500) {
      const batch = rows.slice(at, at + 500);
      await db.run(`INSERT INTO runs (id, job, project, spider, version, node_id, node, state, outcome, created_at, dispatched_at, started_at, ended_at, exit_code, items_count, error_count)
        VALUES ${batch.map(() => `(?, ?, ?, 's', '1', 1, 'n1', ?, ?, ?, ?, ?, ?, ?, 3, 0)`).join(', ')}`, batch.flat());
    }
    if (db.dialect === 'postgres') await db.run(`SELECT setval(pg_get_serial_sequence('runs', 'id'), (SELECT MAX(id) FROM runs))`);
  });
}

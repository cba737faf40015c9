// The two schemas of the master (master/db.ts for SQLite, master/store/postgres_schema.ts for
// PostgreSQL) describe the same tables, columns and kinds of values: a migration added to one list
// and forgotten in the other fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openMasterStore } from '../master/store/open_store.ts';
import type { SqlDb } from '../master/store/sql_db.ts';
import { SQLITE_MIGRATION_COUNT } from '../master/db.ts';
import { POSTGRES_MIGRATIONS } from '../master/store/postgres_schema.ts';
import { freshDatabaseUrl } from './helpers/postgres.ts';
import { tempDir } from './helpers/slave_process.ts';

type Kind = 'int' | 'real' | 'text' | 'blob';
const kindOf = (declared: string): Kind => {
  const t = declared.toUpperCase();
  if (/INT/.test(t)) return 'int';
  if (/REAL|DOUBLE|FLOAT|NUMERIC/.test(t)) return 'real';
  if (/BLOB|BYTEA/.test(t)) return 'blob';
  return 'text';
};

async function shape(db: SqlDb): Promise<Record<string, Record<string, Kind>>> {
  const out: Record<string, Record<string, Kind>> = {};
  const rows = db.dialect === 'sqlite'
    ? await db.all<{ t: string; c: string; type: string }>(
      `SELECT m.name AS t, p.name AS c, p.type AS type FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`)
    : await db.all<{ t: string; c: string; type: string }>(
      `SELECT table_name AS t, column_name AS c, data_type AS type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name <> 'schema_version'`);
  for (const r of rows) (out[r.t] ??= {})[r.c] = kindOf(r.type);
  return out;
}

test('SQLite and PostgreSQL schemas have the same tables, columns and value kinds', async () => {
  const sqlite = await openMasterStore({ kind: 'sqlite', file: join(tempDir('spiderplane-schema-'), 'master.db') });
  const postgres = await openMasterStore({ kind: 'postgres', url: await freshDatabaseUrl() });
  try {
    assert.deepEqual(await shape(postgres), await shape(sqlite));
  } finally {
    await sqlite.close();
    await postgres.close();
  }
});

test('each PostgreSQL migration after the first matches one SQLite migration', () => {
  // The first PostgreSQL entry is SQLite's first ten in one.
  assert.equal(POSTGRES_MIGRATIONS.length + 9, SQLITE_MIGRATION_COUNT);
});

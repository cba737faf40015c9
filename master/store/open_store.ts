import { join, resolve } from 'node:path';
import pg from 'pg';
import { openMasterDbFile } from '../db.ts';
import { SqliteDb } from './sqlite_db.ts';
import { PostgresDb } from './postgres_db.ts';
import { POSTGRES_MIGRATIONS } from './postgres_schema.ts';
import type { SqlDb } from './sql_db.ts';

export type DatabaseLocation = { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string };

/** `--database`: `sqlite:PATH` (default: master.db under the data folder) or `postgres://…`. */
export function parseDatabaseLocation(value: string | null, dataDir: string): DatabaseLocation {
  if (value === null || value === '') return { kind: 'sqlite', file: join(dataDir, 'master.db') };
  if (/^postgres(ql)?:\/\//.test(value)) {
    try {
      new URL(value);
    } catch {
      throw new Error(`--database: '${redactUrl(value)}' is not a valid postgres:// URL`);
    }
    return { kind: 'postgres', url: value };
  }
  if (value.startsWith('sqlite:')) {
    const path = value.slice('sqlite:'.length);
    if (!path) throw new Error('--database sqlite: needs a file path, e.g. sqlite:/var/lib/spiderplane/master.db');
    return { kind: 'sqlite', file: resolve(path) };
  }
  throw new Error(`--database must be sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB, not '${redactUrl(value)}'`);
}

/** The URL with its password hidden, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@');
}

export function describeLocation(loc: DatabaseLocation): string {
  return loc.kind === 'sqlite' ? `sqlite:${loc.file}` : redactUrl(loc.url);
}

/** Opens the master's database and brings its schema up to date. */
export async function openMasterStore(loc: DatabaseLocation): Promise<SqlDb> {
  if (loc.kind === 'sqlite') return new SqliteDb(openMasterDbFile(loc.file));
  await migratePostgres(loc.url);
  return PostgresDb.connect(loc.url);
}

// Any fixed number: masters starting together take turns migrating.
const MIGRATION_LOCK = 0x5350_4d31;

async function migratePostgres(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)');
    const row = (await client.query<{ version: string }>('SELECT version FROM schema_version')).rows[0];
    let current = row ? Number(row.version) : 0;
    if (!row) await client.query('INSERT INTO schema_version (version) VALUES (0)');
    if (current > POSTGRES_MIGRATIONS.length) {
      throw new Error(`the database's schema (version ${current}) is newer than this master knows (${POSTGRES_MIGRATIONS.length}): upgrade this master`);
    }
    for (; current < POSTGRES_MIGRATIONS.length; current++) {
      await client.query('BEGIN');
      try {
        await client.query(POSTGRES_MIGRATIONS[current]!);
        await client.query('UPDATE schema_version SET version = $1', [current + 1]);
        await client.query('COMMIT');
      } catch (e) {
        await client.query('ROLLBACK');
        throw e;
      }
    }
  } finally {
    await client.end();
  }
}

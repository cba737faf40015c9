import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SharedPackages } from '../packages/shared_packages.ts';
import type { SqlDb, SqlValue } from './sql_db.ts';

/**
 * Moves a master's whole state from one database to another (`spiderplane db migrate`): SQLite to
 * PostgreSQL when a single master becomes several, or back. The target must be freshly migrated and
 * empty; nothing is written to the source. Tables go parents first, in batches, each batch one
 * transaction; per-state run counts are rebuilt by the target's own triggers, and PostgreSQL's id
 * sequences continue after the highest id copied. Leadership rows belong to the running masters and
 * are not copied.
 */
// Kept by triggers, owned by the running masters, or rebuilt within seconds by the leader.
const NOT_COPIED = new Set(['run_counts', 'leader_lease', 'masters', 'schema_version', 'sqlite_sequence', 'dispatch_lock', 'login_failures', 'node_jobs']);
const PARENTS_FIRST = ['settings', 'users', 'api_tokens', 'sessions', 'nodes', 'node_versions', 'deployments', 'deployment_targets'];
const BATCH = 500;

export interface CopyProgress { table: string; rows: number }

export async function tablesOf(db: SqlDb): Promise<string[]> {
  const rows = db.dialect === 'sqlite'
    ? await db.all<{ name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
    : await db.all<{ name: string }>(`SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()`);
  return rows.map((r) => r.name);
}

async function keyOf(db: SqlDb, table: string): Promise<string[]> {
  if (db.dialect === 'sqlite') {
    const cols = await db.all<{ name: string; pk: number }>(`SELECT name, pk FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk`, [table]);
    return cols.map((c) => c.name);
  }
  const cols = await db.all<{ name: string }>(
    `SELECT k.column_name AS name FROM information_schema.table_constraints c
       JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name AND k.table_schema = c.table_schema
      WHERE c.table_schema = current_schema() AND c.table_name = ? AND c.constraint_type = 'PRIMARY KEY' ORDER BY k.ordinal_position`, [table]);
  return cols.map((c) => c.name);
}

const ident = (name: string): string => {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`unexpected table or column name ${name}`);
  return name;
};

export async function copyDatabase(from: SqlDb, to: SqlDb, progress: (p: CopyProgress) => void = () => undefined): Promise<CopyProgress[]> {
  const source = (await tablesOf(from)).filter((t) => !NOT_COPIED.has(t));
  const target = new Set(await tablesOf(to));
  const missing = source.filter((t) => !target.has(t));
  if (missing.length) throw new Error(`the target has no table ${missing.join(', ')}: is it a spiderplane master database of the same version?`);
  for (const t of source) {
    const row = await to.get<{ n: number }>(`SELECT COUNT(*) AS n FROM ${ident(t)}`);
    if (row && Number(row.n) > 0) throw new Error(`the target is not empty (table ${t} has ${row.n} rows): migrate into a new, empty database`);
  }
  const ordered = [...PARENTS_FIRST.filter((t) => source.includes(t)), ...source.filter((t) => !PARENTS_FIRST.includes(t)).sort()];
  const done: CopyProgress[] = [];
  for (const table of ordered) {
    const key = await keyOf(from, table);
    let rows = 0;
    let last: SqlValue[] | null = null;
    let offset = 0;
    for (;;) {
      // Keyset pages where the table has a key (stable and flat-cost), offset pages otherwise.
      const keyList = key.map(ident).join(', ');
      const batch: Array<Record<string, SqlValue>> = key.length
        ? await from.all(`SELECT * FROM ${ident(table)} ${last ? `WHERE (${keyList}) > (${key.map(() => '?').join(', ')})` : ''} ORDER BY ${keyList} LIMIT ${BATCH}`, last ?? [])
        : await from.all(`SELECT * FROM ${ident(table)} LIMIT ${BATCH} OFFSET ${offset}`);
      if (batch.length === 0) break;
      const cols = Object.keys(batch[0]!).map(ident);
      await to.tx(async () => {
        const values = batch.map(() => `(${cols.map(() => '?').join(', ')})`).join(', ');
        await to.run(`INSERT INTO ${ident(table)} (${cols.join(', ')}) VALUES ${values}`, batch.flatMap((r) => cols.map((c) => r[c] ?? null)));
      });
      rows += batch.length;
      offset += batch.length;
      last = key.length ? key.map((k) => batch[batch.length - 1]![k] ?? null) : null;
      if (batch.length < BATCH) break;
    }
    if (to.dialect === 'postgres' && key.length === 1 && key[0] === 'id') {
      await to.run(`SELECT setval(pg_get_serial_sequence('${ident(table)}', 'id'), COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM ${ident(table)}`);
    }
    const p = { table, rows };
    done.push(p);
    progress(p);
  }
  return done;
}

/**
 * The package files: a SQLite master keeps them under its data folder (`DIR/PROJECT/VERSION.zip`),
 * masters on PostgreSQL in the database. Each version's bytes go where the target master looks for
 * them, checked against the sha256 its row records. Returns the versions whose file was missing.
 */
export async function copyPackages(from: SqlDb, to: SqlDb, dirs: { from: string | null; to: string | null }): Promise<string[]> {
  const versions = await to.all<{ project: string; version: string; sha256: string }>(`SELECT project, version, sha256 FROM versions ORDER BY project, version`);
  const missing: string[] = [];
  const scratch = join(dirs.to ?? dirs.from ?? '.', '.migrate-cache');
  for (const v of versions) {
    let data: Buffer | null = null;
    if (from.dialect === 'postgres') {
      data = await readFile(await new SharedPackages(from, scratch).localFile(v.sha256)).catch(() => null);
    } else if (dirs.from) {
      data = await readFile(join(dirs.from, v.project, `${v.version}.zip`)).catch(() => null);
    }
    if (!data || createHash('sha256').update(data).digest('hex') !== v.sha256) {
      missing.push(`${v.project} ${v.version}`);
      continue;
    }
    if (to.dialect === 'postgres') {
      await new SharedPackages(to, scratch).put(v.sha256, data);
    } else if (dirs.to) {
      const path = join(dirs.to, v.project, `${v.version}.zip`);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(`${path}.incoming`, data);
      await rename(`${path}.incoming`, path);
    }
  }
  return missing;
}

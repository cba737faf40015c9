/**
 * The master's one door to its database, SQLite or PostgreSQL.
 *
 * Stores write SQL in the subset both engines speak, with `?` placeholders; the PostgreSQL driver
 * numbers them. Every call is asynchronous. A transaction is a callback: inside it (and in every
 * async call it makes) the same `SqlDb` methods run on the transaction's connection, so a store
 * method called from inside another store's transaction joins it instead of deadlocking on the
 * connection (SQLite) or escaping it (PostgreSQL).
 *
 * Where the two engines differ, a store asks `db.sql` for the dialect's fragment (see SqlFragments).
 */
export type Dialect = 'sqlite' | 'postgres';
export type SqlValue = string | number | bigint | null | Buffer;

export interface SqlDb {
  readonly dialect: Dialect;
  readonly sql: SqlFragments;
  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  get<T>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  /** A statement without rows; resolves to how many rows it changed. */
  run(sql: string, params?: readonly SqlValue[]): Promise<number>;
  /** An INSERT into a table with an `id` column; resolves to the new row's id. */
  insert(sql: string, params?: readonly SqlValue[]): Promise<number>;
  /** Runs `fn` in one transaction (joined when already inside one); rolls back when it throws. */
  tx<T>(fn: () => Promise<T>): Promise<T>;
  /** Several statements without parameters (schema changes). */
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
}

/** SQL that differs between the two engines. */
export interface SqlFragments {
  /** `INDEXED BY name` on SQLite (its planner needs the hint on big tables); nothing on PostgreSQL. */
  indexedBy(index: string): string;
  /** The larger of two values: SQLite's scalar MAX(a, b), PostgreSQL's GREATEST(a, b). */
  greatest(a: string, b: string): string;
  least(a: string, b: string): string;
  /** A sum that is 0.0 over no rows (SQLite's total()). */
  total(expr: string): string;
  /** `x IN (…)` over a JSON array parameter of strings or numbers. */
  inJsonArray(expr: string, type: 'text' | 'int'): string;
  /** A text field of a JSON text column, or NULL. */
  jsonText(column: string, key: string): string;
}

export const SQLITE_FRAGMENTS: SqlFragments = {
  indexedBy: (index) => `INDEXED BY ${index}`,
  greatest: (a, b) => `MAX(${a}, ${b})`,
  least: (a, b) => `MIN(${a}, ${b})`,
  total: (expr) => `total(${expr})`,
  inJsonArray: (expr) => `${expr} IN (SELECT value FROM json_each(?))`,
  jsonText: (column, key) => `json_extract(${column}, '$.${jsonKey(key)}')`,
};

export const POSTGRES_FRAGMENTS: SqlFragments = {
  indexedBy: () => '',
  greatest: (a, b) => `GREATEST(${a}, ${b})`,
  least: (a, b) => `LEAST(${a}, ${b})`,
  total: (expr) => `COALESCE(SUM(${expr}), 0)::double precision`,
  inJsonArray: (expr, type) => `${expr} IN (SELECT ${type === 'int' ? 'value::bigint' : 'value'} FROM json_array_elements_text(?::json))`,
  jsonText: (column, key) => `(${column}::json ->> '${jsonKey(key)}')`,
};

function jsonKey(key: string): string {
  if (!/^[A-Za-z0-9_]+$/.test(key)) throw new Error(`bad JSON key ${key}`);
  return key;
}

/** A unique or primary-key constraint refused the write, on either engine. */
export function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** Turns `?` placeholders into `$1, $2, …`, leaving quoted text, identifiers and comments alone. */
export function numberPlaceholders(sql: string): string {
  let out = '';
  let n = 0;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      const end = sql.indexOf(c, i + 1);
      const stop = end < 0 ? sql.length : end + 1;
      out += sql.slice(i, stop);
      i = stop - 1;
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      const stop = end < 0 ? sql.length : end;
      out += sql.slice(i, stop);
      i = stop - 1;
    } else if (c === '?') {
      out += `$${++n}`;
    } else {
      out += c;
    }
  }
  return out;
}

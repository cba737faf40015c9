/**
 * The master's one door to its database, SQLite or PostgreSQL.
 *
 * Stores write SQL in the subset both engines speak, with `?` or `@name` placeholders; the
 * PostgreSQL driver numbers them. Every call is asynchronous. A transaction is a callback: inside it (and in every
 * async call it makes) the same `SqlDb` methods run on the transaction's connection, so a store
 * method called from inside another store's transaction joins it instead of deadlocking on the
 * connection (SQLite) or escaping it (PostgreSQL).
 *
 * Where the two engines differ, a store asks `db.sql` for the dialect's fragment (see SqlFragments).
 */
export type Dialect = 'sqlite' | 'postgres';
export type SqlValue = string | number | bigint | null | Buffer;
/** Positional values for `?`, or named values for `@name` (extra keys are ignored). */
export type SqlParams = readonly SqlValue[] | Readonly<Record<string, unknown>>;

export interface SqlDb {
  readonly dialect: Dialect;
  readonly sql: SqlFragments;
  all<T>(sql: string, params?: SqlParams): Promise<T[]>;
  get<T>(sql: string, params?: SqlParams): Promise<T | undefined>;
  /** A statement without rows; resolves to how many rows it changed. */
  run(sql: string, params?: SqlParams): Promise<number>;
  /** An INSERT into a table with an `id` column; resolves to the new row's id. */
  insert(sql: string, params?: SqlParams): Promise<number>;
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
  /** The database server's clock in epoch ms: one clock for every master sharing it. */
  nowMs: string;
  /** `FOR SHARE` on PostgreSQL: the row stays as read until the transaction ends (SQLite's lock is the whole file). */
  forShare: string;
}

export const SQLITE_FRAGMENTS: SqlFragments = {
  indexedBy: (index) => `INDEXED BY ${index}`,
  greatest: (a, b) => `MAX(${a}, ${b})`,
  least: (a, b) => `MIN(${a}, ${b})`,
  total: (expr) => `total(${expr})`,
  inJsonArray: (expr) => `${expr} IN (SELECT value FROM json_each(?))`,
  jsonText: (column, key) => `json_extract(${column}, '$.${jsonKey(key)}')`,
  nowMs: `CAST(unixepoch('subsec') * 1000 AS INTEGER)`,
  forShare: '',
};

export const POSTGRES_FRAGMENTS: SqlFragments = {
  indexedBy: () => '',
  greatest: (a, b) => `GREATEST(${a}, ${b})`,
  least: (a, b) => `LEAST(${a}, ${b})`,
  total: (expr) => `COALESCE(SUM(${expr}), 0)::double precision`,
  inJsonArray: (expr, type) => `${expr} IN (SELECT ${type === 'int' ? 'value::bigint' : 'value'} FROM json_array_elements_text(?::json))`,
  jsonText: (column, key) => `(${column}::json ->> '${jsonKey(key)}')`,
  nowMs: `CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)`,
  forShare: 'FOR SHARE',
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

/** SQL with `$1, $2, …` for PostgreSQL, and the names behind each number when it used `@name`. */
export interface NumberedSql { text: string; names: string[] | null }

/**
 * Turns `?` or `@name` placeholders into `$1, $2, …` (a name used twice keeps one number), leaving
 * quoted text, quoted identifiers and comments alone.
 */
export function numberPlaceholders(sql: string): NumberedSql {
  let text = '';
  let n = 0;
  const names: string[] = [];
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      const end = sql.indexOf(c, i + 1);
      const stop = end < 0 ? sql.length : end + 1;
      text += sql.slice(i, stop);
      i = stop - 1;
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      const stop = end < 0 ? sql.length : end;
      text += sql.slice(i, stop);
      i = stop - 1;
    } else if (c === '?') {
      text += `$${++n}`;
    } else if (c === '@' && /[A-Za-z_]/.test(sql[i + 1] ?? '')) {
      const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(sql.slice(i + 1))![0];
      let k = names.indexOf(name);
      if (k < 0) k = names.push(name) - 1;
      text += `$${k + 1}`;
      i += name.length;
    } else {
      text += c;
    }
  }
  if (n > 0 && names.length > 0) throw new Error('SQL mixes ? and @name placeholders');
  return { text, names: names.length > 0 ? names : null };
}

/** The values in placeholder order for a numbered statement. */
export function orderedValues(numbered: NumberedSql, params: SqlParams): unknown[] {
  if (numbered.names === null) {
    if (!Array.isArray(params)) throw new Error('this SQL takes ? placeholders: pass an array');
    return params as unknown[];
  }
  if (Array.isArray(params)) throw new Error('this SQL takes @name placeholders: pass an object');
  const named = params as Readonly<Record<string, unknown>>;
  return numbered.names.map((k) => {
    if (!(k in named)) throw new Error(`missing SQL parameter @${k}`);
    return named[k];
  });
}

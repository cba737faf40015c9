import pg from 'pg';
import { AsyncLocalStorage } from 'node:async_hooks';
import { POSTGRES_FRAGMENTS, numberPlaceholders, orderedValues, type NumberedSql, type SqlDb, type SqlParams } from './sql_db.ts';

// Epoch milliseconds and counts are BIGINT; they fit a JS number, so read them as numbers, not strings.
pg.types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (v: string) => Number(v));

type Queryable = pg.Pool | pg.PoolClient;

/**
 * SqlDb on a pool of PostgreSQL connections. A transaction holds one connection from BEGIN to
 * COMMIT; statements made inside its callback (AsyncLocalStorage) use that connection.
 */
export class PostgresDb implements SqlDb {
  readonly dialect = 'postgres' as const;
  readonly sql = POSTGRES_FRAGMENTS;
  private readonly numbered = new Map<string, NumberedSql>();
  private readonly inTx = new AsyncLocalStorage<pg.PoolClient>();

  constructor(readonly pool: pg.Pool) {
    // A connection that dies while idle (database restart) must not crash the master.
    pool.on('error', (e) => console.error('[spiderplane-master] PostgreSQL connection lost:', e.message));
  }

  static connect(url: string, max = 10): PostgresDb {
    // A master paused inside a transaction (SIGSTOP, a stalled VM) must not hold its locks — the
    // leader lease's among them — for ever: the server ends such a session after 8 s.
    return new PostgresDb(new pg.Pool({
      connectionString: url, max, connectionTimeoutMillis: 10_000,
      options: '-c idle_in_transaction_session_timeout=8000',
    }));
  }

  private text(sql: string): NumberedSql {
    let t = this.numbered.get(sql);
    if (t === undefined) {
      t = numberPlaceholders(sql);
      if (this.numbered.size > 1000) this.numbered.clear();
      this.numbered.set(sql, t);
    }
    return t;
  }

  private on(): Queryable {
    return this.inTx.getStore() ?? this.pool;
  }

  private async query<T>(sql: string, params: SqlParams): Promise<pg.QueryResult<T & pg.QueryResultRow>> {
    const numbered = this.text(sql);
    return this.on().query<T & pg.QueryResultRow>(numbered.text, orderedValues(numbered, params));
  }

  async all<T>(sql: string, params: SqlParams = []): Promise<T[]> {
    return (await this.query<T>(sql, params)).rows;
  }

  async get<T>(sql: string, params: SqlParams = []): Promise<T | undefined> {
    return (await this.query<T>(sql, params)).rows[0];
  }

  async run(sql: string, params: SqlParams = []): Promise<number> {
    return (await this.query(sql, params)).rowCount ?? 0;
  }

  async insert(sql: string, params: SqlParams = []): Promise<number> {
    const rows = (await this.query<{ id: number }>(`${sql} RETURNING id`, params)).rows;
    return rows[0]!.id;
  }

  async tx<T>(fn: () => Promise<T>): Promise<T> {
    if (this.inTx.getStore()) return fn();
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await this.inTx.run(client, fn);
      await client.query('COMMIT');
      return result;
    } catch (e) {
      try { await client.query('ROLLBACK'); } catch { broken = true; }
      throw e;
    } finally {
      client.release(broken);
    }
  }

  async exec(sql: string): Promise<void> {
    await this.on().query(sql);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

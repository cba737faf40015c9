import Database from 'better-sqlite3';
import { AsyncLocalStorage } from 'node:async_hooks';
import { SQLITE_FRAGMENTS, type SqlDb, type SqlParams } from './sql_db.ts';

/**
 * SqlDb on one better-sqlite3 connection. Statements run synchronously (SQLite in-process is
 * faster than any hand-off) and are prepared once. A transaction spans awaits, so while one is
 * open every statement from outside it waits for its end: nothing from another request lands in
 * it, or reads what it has not committed.
 */
export class SqliteDb implements SqlDb {
  readonly dialect = 'sqlite' as const;
  readonly sql = SQLITE_FRAGMENTS;
  private readonly statements = new Map<string, Database.Statement>();
  /** Inside a transaction's callback: that transaction's txDone. */
  private readonly inTx = new AsyncLocalStorage<Promise<void>>();
  /** Settles when the open transaction ends; null when none is open. */
  private txDone: Promise<void> | null = null;

  constructor(readonly raw: Database.Database) {}

  private statement(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.raw.prepare(sql);
      if (this.statements.size > 500) this.statements.clear();
      this.statements.set(sql, s);
    }
    return s;
  }

  /** Runs a cached statement with positional or named values (better-sqlite3 ignores extra names). */
  private call<R>(sql: string, params: SqlParams, how: (s: Database.Statement, args: unknown[]) => R): R {
    return how(this.statement(sql), Array.isArray(params) ? params as unknown[] : [params]);
  }

  /** Runs `f` once no other caller's transaction is open; the check and the statement share one tick. */
  private async exclusive<T>(f: () => T): Promise<T> {
    while (this.txDone && this.inTx.getStore() !== this.txDone) await this.txDone;
    return f();
  }

  all<T>(sql: string, params: SqlParams = []): Promise<T[]> {
    return this.exclusive(() => this.call(sql, params, (s, a) => s.all(...a)) as T[]);
  }

  get<T>(sql: string, params: SqlParams = []): Promise<T | undefined> {
    return this.exclusive(() => this.call(sql, params, (s, a) => s.get(...a)) as T | undefined);
  }

  run(sql: string, params: SqlParams = []): Promise<number> {
    return this.exclusive(() => this.call(sql, params, (s, a) => s.run(...a).changes));
  }

  insert(sql: string, params: SqlParams = []): Promise<number> {
    return this.exclusive(() => Number(this.call(sql, params, (s, a) => s.run(...a).lastInsertRowid)));
  }

  async tx<T>(fn: () => Promise<T>): Promise<T> {
    if (this.txDone && this.inTx.getStore() === this.txDone) return fn();
    let end!: () => void;
    // Boxed: returning the bare promise from exclusive() would await it.
    const { done } = await this.exclusive(() => {
      const d = new Promise<void>((r) => { end = r; });
      this.txDone = d;
      this.raw.exec('BEGIN');
      return { done: d };
    });
    try {
      const result = await this.inTx.run(done, fn);
      this.raw.exec('COMMIT');
      return result;
    } catch (e) {
      if (this.raw.inTransaction) this.raw.exec('ROLLBACK');
      throw e;
    } finally {
      this.txDone = null;
      end();
    }
  }

  exec(sql: string): Promise<void> {
    return this.exclusive(() => { this.raw.exec(sql); });
  }

  async close(): Promise<void> {
    await this.exclusive(() => {
      this.statements.clear();
      this.raw.close();
    });
  }
}

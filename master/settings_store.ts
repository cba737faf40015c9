import type { SqlDb } from './store/sql_db.ts';

/** The master's key/value settings (cluster token, saved SMTP settings, cursors): every SQL statement on `settings`. */
export class SettingsStore {
  constructor(private readonly db: SqlDb) {}

  async get(key: string): Promise<string | undefined> { return (await this.db.get<{ value: string }>(`SELECT value FROM settings WHERE key = ?`, [key]))?.value; }
  async has(key: string): Promise<boolean> { return (await this.get(key)) !== undefined; }
  async set(key: string, value: string): Promise<void> {
    await this.db.run(`INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [key, value]);
  }
  /** Sets the key only when it has no value yet; true when this call set it (one winner among several masters). */
  async setIfAbsent(key: string, value: string): Promise<boolean> {
    return (await this.db.run(`INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, [key, value])) === 1;
  }
}

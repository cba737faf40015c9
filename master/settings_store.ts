import type { Db } from '../common/sqlite.ts';

/** The master's key/value settings (cluster token, saved SMTP settings, cursors): every SQL statement on `settings`. */
export class SettingsStore {
  private readonly s;

  constructor(db: Db) {
    this.s = {
      get: db.prepare(`SELECT value FROM settings WHERE key = ?`),
      set: db.prepare(`INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`),
    };
  }

  get(key: string): string | undefined { return (this.s.get.get(key) as { value: string } | undefined)?.value; }
  has(key: string): boolean { return this.get(key) !== undefined; }
  set(key: string, value: string): void { this.s.set.run(key, value); }
}

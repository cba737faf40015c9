// `spiderplane db migrate --from sqlite:PATH --to postgres://…`: moves a master's history, schedules,
// users, alerts and nodes into a new database (see master/store/copy_database.ts). Stop the master first.
import { parseArgs } from 'node:util';
import { dirname, join } from 'node:path';
import { copyDatabase, copyPackages } from '../master/store/copy_database.ts';
import { describeLocation, openMasterStore, parseDatabaseLocation } from '../master/store/open_store.ts';
import type { SqlDb } from '../master/store/sql_db.ts';

export const DB_HELP = `spiderplane db migrate --from DATABASE --to DATABASE
  Copies a stopped master's whole state into a new, empty database, creating its schema.
  DATABASE: sqlite:PATH (a master's master.db) or postgres://USER:PASSWORD@HOST:PORT/DB
  Example: spiderplane db migrate --from sqlite:./data/master/master.db --to postgres://spiderplane:secret@db:5432/spiderplane
`;

export async function dbCommand(argv: string[]): Promise<number> {
  let values: { from?: string; to?: string; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { from: { type: 'string' }, to: { type: 'string' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${DB_HELP}`);
    return 2;
  }
  if (values.help || positionals[0] !== 'migrate' || positionals.length !== 1 || !values.from || !values.to) {
    console.error(DB_HELP);
    return values.help ? 0 : 2;
  }
  let from: SqlDb | null = null;
  let to: SqlDb | null = null;
  try {
    const fromLoc = parseDatabaseLocation(values.from, '.');
    const toLoc = parseDatabaseLocation(values.to, '.');
    if (describeLocation(fromLoc) === describeLocation(toLoc)) throw new Error('--from and --to are the same database');
    if (fromLoc.kind === 'sqlite') {
      const { existsSync } = await import('node:fs');
      if (!existsSync(fromLoc.file)) throw new Error(`no database at ${fromLoc.file}`);
    }
    from = await openMasterStore(fromLoc);
    to = await openMasterStore(toLoc);
    console.log(`copying ${describeLocation(fromLoc)} → ${describeLocation(toLoc)}`);
    let total = 0;
    await copyDatabase(from, to, (p) => {
      total += p.rows;
      console.log(`  ${p.table.padEnd(22)} ${p.rows} rows`);
    });
    // A SQLite master keeps its package files next to its database (DATA_DIR/packages).
    const packagesOf = (loc: typeof fromLoc) => (loc.kind === 'sqlite' ? join(dirname(loc.file), 'packages') : null);
    const missing = await copyPackages(from, to, { from: packagesOf(fromLoc), to: packagesOf(toLoc) });
    if (missing.length) console.error(`warning: no intact package file for ${missing.join(', ')}: upload those versions again`);
    console.log(`done: ${total} rows. Start the masters with --database ${describeLocation(toLoc)}`);
    return 0;
  } catch (e) {
    console.error(`spiderplane db migrate: ${(e as Error).message}`);
    return 1;
  } finally {
    await from?.close();
    await to?.close();
  }
}

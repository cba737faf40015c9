// A throwaway PostgreSQL for the tests: a cluster in a temporary folder, owned by the postgres user
// when the tests run as root (PostgreSQL refuses to run as root), listening on 127.0.0.1 on a free
// port, with fsync off. No system service is used.
//
// SPIDERPLANE_TEST_PG_URL: a cluster already started for the whole run (test/with_postgres.ts);
// without it, the first call starts one for this test process, stopped when the process exits.
// SPIDERPLANE_TEST_DATABASE=postgres: every test master without its own --database gets a fresh
// database in that cluster (the master suite, run a second time on PostgreSQL).
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { freePort } from './daemon_tools.ts';

export interface PgCluster {
  /** The superuser's URL to the `postgres` database. */
  adminUrl: string;
  stop(): void;
}

function binDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(join(base, v, 'bin', 'pg_ctl'))) return join(base, v, 'bin');
  throw new Error('PostgreSQL is not installed (apt-get install -y postgresql; scripts/install-test-deps.sh does it)');
}

export async function startPostgresCluster(): Promise<PgCluster> {
  const bin = binDir();
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'spiderplane-pg-'));
  const data = join(dir, 'data');
  const asPg = (cmd: string, args: string[]) => root ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] as const : [cmd, args] as const;
  if (root) {
    const pgUser = execFileSync('id', ['-u', 'postgres']).toString().trim();
    const pgGroup = execFileSync('id', ['-g', 'postgres']).toString().trim();
    chownSync(dir, Number(pgUser), Number(pgGroup));
  }
  const [initCmd, initArgs] = asPg(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  const init = spawnSync(initCmd, initArgs, { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  const port = await freePort();
  const opts = `-p ${port} -h 127.0.0.1 -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 -c shared_buffers=32MB`;
  const [startCmd, startArgs] = asPg(join(bin, 'pg_ctl'), ['-D', data, '-o', opts, '-l', join(dir, 'server.log'), '-w', '-t', '120', 'start']);
  const start = spawnSync(startCmd, startArgs, { encoding: 'utf8' });
  if (start.status !== 0) throw new Error(`pg_ctl start failed: ${start.stderr || start.stdout}`);
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    const [stopCmd, stopArgs] = asPg(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
    spawnSync(stopCmd, stopArgs, { encoding: 'utf8' });
    rmSync(dir, { recursive: true, force: true });
  };
  return { adminUrl: `postgres://postgres@127.0.0.1:${port}/postgres`, stop };
}

let ownCluster: Promise<PgCluster> | null = null;

/** The run's cluster (SPIDERPLANE_TEST_PG_URL), or one for this process. */
export async function testPostgresUrl(): Promise<string> {
  if (process.env.SPIDERPLANE_TEST_PG_URL) return process.env.SPIDERPLANE_TEST_PG_URL;
  if (!ownCluster) {
    ownCluster = startPostgresCluster();
    const c = await ownCluster;
    process.once('exit', () => c.stop());
  }
  return (await ownCluster).adminUrl;
}

/** A new, empty database in the test cluster; its URL. */
export async function freshDatabaseUrl(): Promise<string> {
  const admin = await testPostgresUrl();
  const name = `spt_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const u = new URL(admin);
  u.pathname = `/${name}`;
  return u.toString();
}

/** True when this run puts every test master on PostgreSQL. */
export const mastersOnPostgres = process.env.SPIDERPLANE_TEST_DATABASE === 'postgres';

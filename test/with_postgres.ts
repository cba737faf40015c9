// Runs a command with one throwaway PostgreSQL cluster for all of it:
//   tsx test/with_postgres.ts CMD ARGS…
// The command sees SPIDERPLANE_TEST_PG_URL (the cluster) and SPIDERPLANE_TEST_DATABASE=postgres
// (every test master gets its own fresh database there). The cluster is removed afterwards.
import { spawn } from 'node:child_process';
import { startPostgresCluster } from './helpers/postgres.ts';

const [cmd, ...args] = process.argv.slice(2);
if (!cmd) {
  console.error('usage: tsx test/with_postgres.ts CMD ARGS…');
  process.exit(2);
}
const cluster = await startPostgresCluster();
console.log(`[with_postgres] PostgreSQL at ${cluster.adminUrl}`);
const child = spawn(cmd, args, { stdio: 'inherit', env: { ...process.env, SPIDERPLANE_TEST_PG_URL: cluster.adminUrl, SPIDERPLANE_TEST_DATABASE: 'postgres' } });
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => {
  cluster.stop();
  process.exit(code ?? (signal ? 1 : 0));
});

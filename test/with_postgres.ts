// Runs a command with one throwaway PostgreSQL cluster for all of it:
//   tsx test/with_postgres.ts [--all-masters] CMD ARGS…
// The command sees SPIDERPLANE_TEST_PG_URL (the cluster: test/postgres/*.test.ts and the HA tests
// make their databases there instead of starting a cluster each). With --all-masters it also sees
// SPIDERPLANE_TEST_DATABASE=postgres: every test master gets its own fresh database there. The
// cluster is removed afterwards.
import { spawn } from 'node:child_process';
import { startPostgresCluster } from './helpers/postgres.ts';

const argv = process.argv.slice(2);
const allMasters = argv[0] === '--all-masters';
const [cmd, ...args] = allMasters ? argv.slice(1) : argv;
if (!cmd) {
  console.error('usage: tsx test/with_postgres.ts [--all-masters] CMD ARGS…');
  process.exit(2);
}
const cluster = await startPostgresCluster();
console.log(`[with_postgres] PostgreSQL at ${cluster.adminUrl}`);
const child = spawn(cmd, args, { stdio: 'inherit', env: { ...process.env, SPIDERPLANE_TEST_PG_URL: cluster.adminUrl, ...(allMasters ? { SPIDERPLANE_TEST_DATABASE: 'postgres' } : {}) } });
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => {
  cluster.stop();
  process.exit(code ?? (signal ? 1 : 0));
});

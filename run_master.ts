// The master (control plane). `tsx run_master.ts --help` lists its options.
// With --local-slave it also starts a slave in this process that joins it: the one-command setup.
import { dirname, join } from 'node:path';
import { optionsOrExit, parseOptions } from './common/options.ts';
import { loadMasterConfig } from './master/config.ts';
import { Master } from './master/master.ts';
import { Slave } from './slave/slave.ts';
import { SLAVE_OPTIONS, slaveConfig } from './slave/config.ts';
import { RunAsError } from './slave/runner/run_as.ts';
import { DataDirError } from './slave/runner/data_layout.ts';

const LOCAL_SLAVE_FROM_ENV = new Set(['run-as', 'spider-env', 'spider-env-pass']);
import { isLoopbackBind } from './common/loopback.ts';

async function main(): Promise<void> {
  const config = optionsOrExit(() => loadMasterConfig(process.argv.slice(2)));
  if (!isLoopbackBind(config.bind)) {
    // The master has logins, but speaks plain HTTP: passwords and tokens cross the network readable.
    console.warn(`[spiderplane-master] warning: listening on ${config.bind} over plain HTTP: logins, API tokens and the cluster token travel unencrypted. ` +
      'Put it behind a TLS reverse proxy (daemon/nginx/) and keep --bind 127.0.0.1, or use it only on a network you trust.');
  }
  const master = await Master.start(config);
  let slave: Slave | null = null;
  // Handlers first, then the "listening" line: a supervisor (or a test) that stops the master as soon
  // as it says it listens gets a clean shutdown, not the default action of an unhandled SIGTERM.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`[spiderplane-master] ${signal}: shutting down`);
    Promise.all([master.stop(), slave?.stop()]).then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  console.log(`[spiderplane-master] listening on ${master.url} (data in ${config.dataDir})`);
  if (config.clusterToken === null) {
    console.log(`[spiderplane-master] cluster token for slaves: ${master.clusterToken} (run slaves with --master ${master.url} --cluster-token <token>)`);
  }
  if (config.localSlave) {
    // The spiders' user and environment come from the slave's own variables (SPIDERPLANE_RUN_AS,
    // SPIDERPLANE_SPIDER_ENV, SPIDERPLANE_SPIDER_ENV_PASS), as for a standalone slave.
    const localConfig = optionsOrExit(() => slaveConfig({
      ...parseOptions(SLAVE_OPTIONS.filter((o) => LOCAL_SLAVE_FROM_ENV.has(o.flag)), [], process.env),
      bind: '127.0.0.1', port: config.localSlavePort, data_dir: join(dirname(config.dataDir), 'slave'),
      master: master.url, cluster_token: master.clusterToken,
    }));
    slave = await Slave.start(localConfig);
    console.log(`[spiderplane-master] local slave listening on ${slave.url}`);
  }
}

main().catch((err) => {
  // A refusal of the --local-slave that names its fix (run-as user, data folder): no stack trace.
  const refusal = err instanceof RunAsError || err instanceof DataDirError;
  console.error('[spiderplane-master] failed to start:', refusal ? (err as Error).message : err);
  process.exit(1);
});

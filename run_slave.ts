// The slave daemon: a Scrapyd-compatible spider runner. `tsx run_slave.ts --help` lists its options.
import { loadSlaveConfig } from './slave/config.ts';
import { optionsOrExit } from './common/options.ts';
import { Slave } from './slave/slave.ts';
import { RunAsError } from './slave/runner/run_as.ts';
import { DataDirError } from './slave/runner/data_layout.ts';

async function main(): Promise<void> {
  const config = optionsOrExit(() => loadSlaveConfig(process.argv.slice(2)));
  const slave = await Slave.start(config);
  // Handlers before the "listening" line: a stop sent the moment it appears is a clean shutdown.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`[spiderplane-slave] ${signal}: shutting down (${config.onShutdown === 'stop' ? 'stopping running spiders' : 'leaving running spiders for the next start'})`);
    slave.stop().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  console.log(`[spiderplane-slave] ${config.nodeName} listening on ${slave.url} (data in ${config.dataDir}, max_proc ${slave.core.launcher.maxProc})`);
}

main().catch((err) => {
  // A refusal that names its fix (run-as user, data folder) is printed without a stack trace.
  const refusal = err instanceof RunAsError || err instanceof DataDirError;
  console.error('[spiderplane-slave] failed to start:', refusal ? (err as Error).message : err);
  process.exit(1);
});

#!/bin/sh
# Entrypoint of the spiderplane image: the first argument picks the program, the rest are its flags.
#   master [FLAGS]   run_master.ts (port 5000, data in /data/master)
#   slave  [FLAGS]   run_slave.ts  (port 6800, data in /data/slave)
#   cli    [ARGS]    npx spiderplane … (SPIDERPLANE_URL, SPIDERPLANE_USER, SPIDERPLANE_PASSWORD)
#   health           exit 0 when the daemon of this container answers HTTP (for HEALTHCHECK/probes)
#   anything else    run as a command
set -e
cd /opt/spiderplane
role="${1:-master}"
[ $# -gt 0 ] && shift
case "$role" in
  master) exec node --import tsx run_master.ts "$@" ;;
  slave)  exec node --import tsx run_slave.ts "$@" ;;
  cli)    exec node --import tsx cli/main.ts "$@" ;;
  health)
    exec node -e '
      const ps = process.argv.slice(1).filter(Boolean);
      Promise.any(ps.map((p) => fetch("http://127.0.0.1:" + p + "/", { signal: AbortSignal.timeout(4000) })))
        .then(() => process.exit(0), () => process.exit(1));' "${SPIDERPLANE_MASTER_PORT:-5000}" "${SPIDERPLANE_SLAVE_PORT:-6800}" ;;
  *) exec "$role" "$@" ;;
esac

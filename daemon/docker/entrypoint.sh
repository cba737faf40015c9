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
# The master needs no privilege: started as root, it re-runs itself as spiderplane. The slave stays
# root so that it can run spiders as the unprivileged spiderplane-run (SPIDERPLANE_RUN_AS).
if [ "$role" = master ] && [ "$(id -u)" = 0 ] && id spiderplane >/dev/null 2>&1; then
  exec setpriv --reuid=spiderplane --regid=spiderplane --clear-groups -- "$0" "$@"
fi
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

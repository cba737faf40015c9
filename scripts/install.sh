#!/usr/bin/env bash
# Installs what spiderplane needs to run on Debian/Ubuntu: the npm packages from the lockfile,
# Debian's Scrapy for /usr/bin/python3 so Scrapy eggs can run, and python3-venv + python3-pip so a
# slave builds each version's declared requirements into a virtualenv at deploy (each skipped when
# already there, or when apt-get is not available — generic Node/Python/shell packages without
# requirements run without them), and the
# unprivileged system user `spiderplane-run` that a slave started as root runs its spiders as
# (skipped without root: a slave then falls back to `nobody`, or runs spiders as itself when it
# is not root).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '[install] %s\n' "$*" >&2; }

SUDO=()
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO=(sudo)

apt_retry() {
  local attempt
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" && return 0
    log "apt-get $1 failed (attempt $attempt/10); the dpkg lock may be held, retrying in 5 s"
    sleep 5
  done
  return 1
}

# Extra Debian packages a caller wants (the test setup adds chromium).
EXTRA_APT=("$@")
need_scrapy=0
/usr/bin/python3 -c 'import scrapy, setuptools' >/dev/null 2>&1 || need_scrapy=1
missing=()
[ "$need_scrapy" -eq 1 ] && missing+=(python3-scrapy python3-setuptools)
# Per-project dependencies: `python3 -m venv` and `python3 -m pip` (Debian splits them out).
for pkg in python3-venv python3-pip; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
for pkg in "${EXTRA_APT[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ ${#SUDO[@]} -gt 0 ]; }; then
    log "installing ${missing[*]}"
    apt_retry update
    apt_retry install -y --no-install-recommends "${missing[@]}"
  else
    log "cannot install ${missing[*]} (no apt-get or no root): Scrapy eggs need 'import scrapy' to work for /usr/bin/python3 or --python, and versions with requirements need its venv and pip modules"
  fi
fi

# The spiders' user: a system account with no login and its own home (pip's and npm's per-user
# config and caches go there). It owns nothing of the daemons'.
RUN_USER=spiderplane-run
if id "$RUN_USER" >/dev/null 2>&1; then
  log "user $RUN_USER exists"
elif [ "$(id -u)" -eq 0 ] || [ ${#SUDO[@]} -gt 0 ]; then
  log "creating the system user $RUN_USER (spiders run as it when the slave runs as root)"
  nologin=/usr/sbin/nologin; [ -x "$nologin" ] || nologin=/bin/false
  "${SUDO[@]}" useradd --system --user-group --create-home --home-dir "/var/lib/$RUN_USER" --shell "$nologin" \
    --comment "spiderplane spiders" "$RUN_USER"
  "${SUDO[@]}" chmod 0750 "/var/lib/$RUN_USER"
else
  log "cannot create the user $RUN_USER without root: a slave started as root runs spiders as 'nobody' (with a warning)"
fi

log "npm ci in $REPO_ROOT"
cd "$REPO_ROOT"
npm ci --no-fund --no-audit

#!/usr/bin/env bash
# Installs what spiderplane needs to run on Debian/Ubuntu: the npm packages from the lockfile, and
# Debian's Scrapy for /usr/bin/python3 so Scrapy eggs can run (skipped when already there, or when
# apt-get is not available — generic Node/Python/shell packages run without it).
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
for pkg in "${EXTRA_APT[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ ${#SUDO[@]} -gt 0 ]; }; then
    log "installing ${missing[*]}"
    apt_retry update
    apt_retry install -y --no-install-recommends "${missing[@]}"
  else
    log "cannot install ${missing[*]} (no apt-get or no root): Scrapy eggs need 'import scrapy' to work for /usr/bin/python3 or --python"
  fi
fi

log "npm ci in $REPO_ROOT"
cd "$REPO_ROOT"
npm ci --no-fund --no-audit

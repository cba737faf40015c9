#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian bookworm machine:
#   - Debian's Scrapy (+ setuptools, to build eggs) for /usr/bin/python3
#   - Chromium for the browser tests
#   - the npm dependencies (npm ci)
# Idempotent: apt is skipped entirely when everything is already there.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APT_PACKAGES=(python3-scrapy python3-setuptools chromium)

log() { printf '[install-test-deps] %s\n' "$*" >&2; }

# Run as root directly, or through sudo when available.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    log "not root and sudo is missing; apt steps may fail"
  fi
fi

have_system_deps() {
  [ -x /usr/bin/python3 ] \
    && /usr/bin/python3 -c 'import scrapy, setuptools' >/dev/null 2>&1 \
    && [ -x /usr/bin/chromium ] \
    && /usr/bin/chromium --version >/dev/null 2>&1
}

# apt-get with retries while another process holds the dpkg/apt lock.
apt_retry() {
  local attempt
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    if "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@"; then
      return 0
    fi
    log "apt-get $1 failed (attempt $attempt/10), the dpkg lock may be held; retrying in 5s"
    sleep 5
  done
  log "apt-get $* kept failing"
  return 1
}

if have_system_deps; then
  log "scrapy, setuptools and chromium already present; skipping apt"
else
  log "installing ${APT_PACKAGES[*]}"
  apt_retry update
  apt_retry install -y --no-install-recommends "${APT_PACKAGES[@]}"
  if ! have_system_deps; then
    log "system dependencies still missing after apt-get install"
    exit 1
  fi
fi

log "scrapy $(/usr/bin/python3 -c 'import scrapy; print(scrapy.__version__)'), $(/usr/bin/chromium --version 2>/dev/null)"

log "npm ci in $REPO_ROOT"
cd "$REPO_ROOT"
npm ci

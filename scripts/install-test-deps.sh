#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian bookworm machine: what the platform
# needs (npm packages, Debian's Scrapy + setuptools for /usr/bin/python3 to build and run eggs,
# python3-venv + python3-pip for the dependency tests: test/deps.test.ts builds real environments),
# plus Chromium for the browser tests, and supervisor, nginx, systemd (systemd-analyze) and openssl for
# the daemon/ tests, and PostgreSQL for the master on PostgreSQL (test/helpers/postgres.ts starts a
# throwaway cluster; no system service is used). Idempotent.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO_ROOT/scripts/install.sh" chromium supervisor nginx systemd openssl postgresql
/usr/bin/python3 -c 'import scrapy, setuptools' || { echo "[install-test-deps] Scrapy is still missing for /usr/bin/python3" >&2; exit 1; }
/usr/bin/python3 -c 'import venv' 2>/dev/null && /usr/bin/python3 -m pip --version >/dev/null || { echo "[install-test-deps] python3-venv / python3-pip are still missing for /usr/bin/python3" >&2; exit 1; }

#!/usr/bin/env bash
# One setup command: .venv with regconform installed, the registry binary (Debian's
# docker-registry, distribution 2.8.2), a Docker engine (started here when none is reachable,
# as root) and the registry image (registry:2 if present, else built locally).
# Usage: ./setup.sh [--no-docker]   (--no-docker: process backend only)
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" = 0 ]; then
  need=()
  command -v docker-registry >/dev/null || need+=(docker-registry)
  command -v skopeo >/dev/null || need+=(skopeo)
  command -v htpasswd >/dev/null || need+=(apache2-utils)
  command -v openssl >/dev/null || need+=(openssl)
  command -v chromium >/dev/null || need+=(chromium)  # report.html screenshot self-test (headless)
  if [ "${1:-}" != "--no-docker" ] && ! command -v dockerd >/dev/null; then need+=(docker.io); fi
  if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e . 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/regconform setup "$@"

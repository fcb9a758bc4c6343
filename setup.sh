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
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)  # router of the embedded routed mirror
  command -v chromium >/dev/null || need+=(chromium)  # report.html screenshot self-test (headless)
  # real clients of the clients workflow (docker CLI + dockerd, containerd/ctr come with docker.io)
  command -v podman >/dev/null || need+=(podman)
  command -v buildah >/dev/null || need+=(buildah)
  command -v npm >/dev/null || need+=(npm)
  if [ "${1:-}" != "--no-docker" ] && ! command -v dockerd >/dev/null; then need+=(docker.io); fi
  if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e . 2>&1 | grep -v "^WARNING: Location" || true
# @sigstore/oci for the clients workflow, into the project's own folder (from the committed lock file)
if command -v npm >/dev/null; then
  (cd src/regconform/clients/node && npm ci --silent --no-audit --no-fund) || echo "regconform: npm ci failed; the @sigstore/oci checks will skip" >&2
fi
.venv/bin/regconform setup "$@"

#!/usr/bin/env bash
# Installs etcd from Debian (`etcd-server`): the etcd store's tests (tests/store_conformance.rs,
# tests/etcd_*.rs start real etcd processes, and with CI=true fail rather than skip without it) and
# the benchmark's etcd baseline. Only in CI (CI=true) or when run by hand with --force; skipped when
# etcd is already there. Plain `cargo build`/`cargo test` never need it (the etcd tests say they
# skipped).
set -euo pipefail

if command -v etcd >/dev/null 2>&1; then
  echo "40-etcd: $(etcd --version | head -1) already installed"
  exit 0
fi
if [ "${CI:-}" != "true" ] && [ "${1:-}" != "--force" ]; then
  echo "40-etcd: not CI; skipping (run with --force to install etcd-server)"
  exit 0
fi

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
echo "40-etcd: installed $(etcd --version | head -1)"

#!/usr/bin/env bash
# Installs etcd (the benchmark's baseline) and protoc (etcd-client's build script needs it) from
# Debian, so .ci/suites/40-bench-smoke.sh can build credvault-bench with --features etcd-bench and
# compare against a real etcd. Only in CI (CI=true) or when run by hand with --force; skipped when
# both tools are already there. Plain `cargo build`/`cargo test` never need either.
set -euo pipefail

if command -v etcd >/dev/null 2>&1 && command -v protoc >/dev/null 2>&1; then
  echo "40-etcd: $(etcd --version | head -1), $(protoc --version) already installed"
  exit 0
fi
if [ "${CI:-}" != "true" ] && [ "${1:-}" != "--force" ]; then
  echo "40-etcd: not CI; skipping (run with --force to install etcd-server and protobuf-compiler)"
  exit 0
fi

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server protobuf-compiler >/dev/null
echo "40-etcd: installed $(etcd --version | head -1), $(protoc --version)"

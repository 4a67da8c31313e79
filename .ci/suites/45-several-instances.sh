#!/usr/bin/env bash
# The README's "Running several instances" walk-through, as a user runs it: examples/
# several-instances.sh starts a 3-member etcd and two credvault instances on loopback, adds on one,
# resolves on the other, deletes, and fails if the other still resolves. Needs etcd (40-etcd.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v etcd >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then
    echo "45-several-instances: CI=true but no etcd (.ci/install.d/40-etcd.sh installs it)"; exit 1
  fi
  echo "45-several-instances: no etcd: skipped"; exit 0
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
timeout 120 bash examples/several-instances.sh | tee "$out"
grep -q '^password: *f00dfeedcafe0123456789abcdef4242$' "$out" || { echo "B did not resolve A's add"; exit 1; }
grep -q 'one set of credentials: done' "$out" || { echo "the walk-through did not finish"; exit 1; }

#!/usr/bin/env bash
# cargo deny check, with what this machine can reach. Bans, licenses and sources need only the
# lock file and the registry. Advisories need the RustSec database, a git repository on GitHub:
# when it cannot be fetched (CI here reaches package registries only) and no earlier copy is in
# ~/.cargo/advisory-dbs, advisories are NOT checked, and this says so on a line of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

if timeout 60 cargo deny fetch >/dev/null 2>&1; then
  echo "cargo deny: advisory database fetched"
  cargo deny check --hide-inclusion-graph
elif compgen -G "${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/*/crates" >/dev/null; then
  for db in "${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/*/; do
    echo "cargo deny: advisory database not reachable; using the copy in $db (last commit $(git -C "$db" log -1 --format=%cd 2>/dev/null || echo unknown))"
  done
  cargo deny --offline check --hide-inclusion-graph
else
  cargo deny --offline check --hide-inclusion-graph bans licenses sources
  echo "cargo deny: ADVISORIES NOT CHECKED: the RustSec advisory database cannot be fetched from this machine and no copy is present"
fi

#!/usr/bin/env bash
# The public contract (proto/credvault/): `buf lint` with the STANDARD rules (buf.yaml names the
# exemptions and why), and `buf breaking` against the previous commit's proto, so no change
# breaks a client generated from an earlier one. Needs buf (.ci/install.d/35-buf.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
buf=.ci/buf/node_modules/.bin/buf
if [ ! -x "$buf" ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "05-buf: CI=true but no buf (.ci/install.d/35-buf.sh installs it)"; exit 1
  fi
  echo "05-buf: no buf: skipped (bash .ci/install.d/35-buf.sh --force)"; exit 0
fi
"$buf" lint
echo "05-buf: buf lint (STANDARD): clean"
if ! git cat-file -e HEAD~1:proto/credvault 2>/dev/null; then
  if [ "${CI:-}" = "true" ] && [ "$(git rev-parse --is-shallow-repository)" = "true" ]; then
    echo "05-buf: a shallow clone has no previous commit to compare with"; exit 1
  fi
  echo "05-buf: no previous commit with proto/credvault: buf breaking has nothing to compare"
  exit 0
fi
prev=$(mktemp -d)
trap 'rm -rf "$prev"' EXIT
git archive HEAD~1 proto/credvault | tar -x -C "$prev"
"$buf" breaking --against "$prev/proto"
echo "05-buf: buf breaking against $(git rev-parse --short HEAD~1): no breaking change"

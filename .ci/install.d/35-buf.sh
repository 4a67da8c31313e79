#!/usr/bin/env bash
# Installs the buf CLI (npm's @bufbuild/buf, a prebuilt binary) into .ci/buf/node_modules, for
# .ci/suites/05-buf.sh (buf lint and buf breaking on proto/). Its own prefix: an `npm install
# --no-save` in .ci/ would prune Prism. Only in CI (CI=true), or when run by hand:
#   bash .ci/install.d/35-buf.sh --force
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CI:-}" != "true" ] && [ "${1:-}" != "--force" ]; then
  echo "35-buf: not CI; skipping (run with --force to install locally)"
  exit 0
fi

BUF_VERSION=1.75.0
bin=buf/node_modules/.bin/buf
if [ -x "$bin" ] && [ "$("$bin" --version 2>/dev/null)" = "$BUF_VERSION" ]; then
  echo "35-buf: buf $BUF_VERSION already in .ci/buf"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "35-buf: npm not found; installing Node.js from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
mkdir -p buf
npm install --prefix buf --no-save --no-audit --no-fund --loglevel=error "@bufbuild/buf@$BUF_VERSION"
"$bin" --version

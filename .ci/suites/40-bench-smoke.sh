#!/usr/bin/env bash
# Smoke run of credvault-bench (issue 9): every scenario for a fraction of a second on small
# stores, against the release build, with the etcd baseline (40-etcd.sh installs etcd; in CI its
# rows are required). No thresholds: it checks that the tool runs end to end and prints its report (a failing
# RPC, a stalled storm or a server that does not start makes it exit non-zero).
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)

have_etcd=false
if command -v etcd >/dev/null 2>&1; then
  have_etcd=true
elif [ "${CI:-}" = "true" ]; then
  echo "40-bench-smoke: CI=true but no etcd (.ci/install.d/40-etcd.sh installs it)"; exit 1
else
  echo "40-bench-smoke: no etcd: etcd rows will be skipped"
fi

# `startup` spawns target/release/credvault: make sure it is the current one.
cargo build --release --bins
cargo build --release -p credvault-bench
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"${CARGO_TARGET_DIR:-target}"/release/credvault-bench all --smoke | tee "$out"

grep -q '^| resolve ' "$out" || { echo "no Resolve row"; exit 1; }
grep -q '^| durable add c=64 ' "$out" || { echo "no durable Add row"; exit 1; }
grep -q 'steady progress' "$out" || { echo "Add(replace) storm did not make steady progress"; exit 1; }
grep -q '^startup (' "$out" || { echo "no startup line"; exit 1; }
# A row's errors column is its last: every scenario must have answered without errors.
if awk -F'|' '/^\| / && $2 !~ /scenario/ && $2 !~ /ratio/ && NF > 9 && $(NF-1)+0 > 0 {bad=1} END {exit !bad}' "$out"; then
  echo "some scenario had errors"; exit 1
fi
if $have_etcd; then
  grep -q '^| etcd range' "$out" || { echo "etcd is there but no etcd rows"; exit 1; }
  # credvault on the etcd store (issue 19): Resolve and Add next to etcd's Range and Txn.
  etcd_out=$(mktemp)
  "${CARGO_TARGET_DIR:-target}"/release/credvault-bench on-etcd --smoke | tee "$etcd_out"
  grep -q '^| resolve 200 on etcd ' "$etcd_out" || { echo "no Resolve-on-etcd row"; exit 1; }
  grep -q '^| etcd create txn c=64 ' "$etcd_out" || { echo "no etcd create Txn row"; exit 1; }
  if awk -F'|' '/^\| / && $2 !~ /scenario/ && NF > 9 && $(NF-1)+0 > 0 {bad=1} END {exit !bad}' "$etcd_out"; then
    echo "an on-etcd scenario had errors"; exit 1
  fi
  rm -f "$etcd_out"
fi
# Callers, audit and TLS (issue 17): every variant answers.
callers_out=$(mktemp)
trap 'rm -f "$out" "$callers_out"' EXIT
"${CARGO_TARGET_DIR:-target}"/release/credvault-bench callers --smoke | tee "$callers_out"
grep -q '^| resolve mTLS buffered ' "$callers_out" || { echo "no mTLS Resolve row"; exit 1; }
grep -q '^per call, one task: audit record (sync)' "$callers_out" || { echo "no audit cost line"; exit 1; }
if awk -F'|' '/^\| / && $2 !~ /scenario/ && NF > 9 && $(NF-1)+0 > 0 {bad=1} END {exit !bad}' "$callers_out"; then
  echo "a callers scenario had errors"; exit 1
fi
# Resolve during a rewrap (issue 18): both throttles run a pass to the end without errors.
rewrap_out=$(mktemp)
trap 'rm -f "$out" "$callers_out" "$rewrap_out"' EXIT
"${CARGO_TARGET_DIR:-target}"/release/credvault-bench rewrap --smoke | tee "$rewrap_out"
grep -q '^| resolve 500 during rewrap 1000/s ' "$rewrap_out" || { echo "no Resolve-during-rewrap row"; exit 1; }
if awk -F'|' '/^\| / && $2 !~ /scenario/ && NF > 9 && $(NF-1)+0 > 0 {bad=1} END {exit !bad}' "$rewrap_out"; then
  echo "a rewrap scenario had errors"; exit 1
fi
# Health and Resolve beside periodic re-validation running flat out (issue 20).
reval_out=$(mktemp)
trap 'rm -f "$out" "$callers_out" "$rewrap_out" "$reval_out"' EXIT
"${CARGO_TARGET_DIR:-target}"/release/credvault-bench revalidate --smoke | tee "$reval_out"
grep -q '^| resolve 200 (revalidating) ' "$reval_out" || { echo "no Resolve-while-revalidating row"; exit 1; }
grep -q 'the Twilio stand-in was asked [1-9]' "$reval_out" || { echo "re-validation asked the stand-in nothing"; exit 1; }
if awk -F'|' '/^\| / && $2 !~ /scenario/ && NF > 9 && $(NF-1)+0 > 0 {bad=1} END {exit !bad}' "$reval_out"; then
  echo "a revalidate scenario had errors"; exit 1
fi
# Health and Resolve with metrics off and on, scraped meanwhile (issue 21).
metrics_out=$(mktemp)
trap 'rm -f "$out" "$callers_out" "$rewrap_out" "$reval_out" "$metrics_out"' EXIT
"${CARGO_TARGET_DIR:-target}"/release/credvault-bench metrics --smoke | tee "$metrics_out"
grep -q '^| resolve 200 (metrics on) ' "$metrics_out" || { echo "no Resolve-with-metrics row"; exit 1; }
if awk -F'|' '/^\| / && $2 !~ /scenario/ && NF > 9 && $(NF-1)+0 > 0 {bad=1} END {exit !bad}' "$metrics_out"; then
  echo "a metrics scenario had errors"; exit 1
fi
echo "40-bench-smoke: ok in $(( $(date +%s) - start )) s"

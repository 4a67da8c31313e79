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
# One more scenario: it prints the row `$2` and no row with errors. Its output is in $last_out.
outs=()
trap 'rm -f "$out" "${outs[@]}"' EXIT
smoke() {
  last_out=$(mktemp)
  outs+=("$last_out")
  "${CARGO_TARGET_DIR:-target}"/release/credvault-bench "$1" --smoke | tee "$last_out"
  grep -qF "| $2 " "$last_out" || { echo "$1: no '$2' row"; exit 1; }
  if awk -F'|' '/^\| / && $2 !~ /scenario/ && NF > 9 && $(NF-1)+0 > 0 {bad=1} END {exit !bad}' "$last_out"; then
    echo "a $1 scenario had errors"; exit 1
  fi
}
# Callers, audit and TLS (issue 17): every variant answers.
smoke callers "resolve mTLS buffered"
grep -q '^per call, one task: audit record (sync)' "$last_out" || { echo "no audit cost line"; exit 1; }
# Resolve during a rewrap (issue 18): both throttles run a pass to the end without errors.
smoke rewrap "resolve 500 during rewrap 1000/s"
# Health and Resolve beside periodic re-validation running flat out (issue 20).
smoke revalidate "resolve 200 (revalidating)"
grep -q 'the Twilio stand-in was asked [1-9]' "$last_out" || { echo "re-validation asked the stand-in nothing"; exit 1; }
# Health and Resolve with metrics off and on, scraped meanwhile (issue 21).
smoke metrics "resolve 200 (metrics on)"
grep -q 'recording one RPC (Metrics::rpc' "$last_out" || { echo "no metrics cost line"; exit 1; }
echo "40-bench-smoke: ok in $(( $(date +%s) - start )) s"

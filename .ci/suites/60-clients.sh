#!/usr/bin/env bash
# The client examples, run as a developer of another service would: the release server on
# loopback with both Twilio bases pointed at Prism mocks of Twilio's specs (README, "Try Validate
# on your machine"), then examples/rust_client.rs and examples/python/client.py against it, each
# doing Add, Validate (with a test SMS), Resolve, List and Delete with the bootstrap token.
# Needs Prism (.ci/install.d/30-prism.sh); pip-installs the Python example's requirements.
set -euo pipefail
cd "$(dirname "$0")/../.."
prism=.ci/node_modules/.bin/prism
if [ ! -x "$prism" ]; then
  if [ "${CI:-}" = "true" ]; then echo "60-clients: CI=true but no prism"; exit 1; fi
  echo "60-clients: no prism: skipped (bash .ci/install.d/30-prism.sh --force)"; exit 0
fi
bin=${CARGO_TARGET_DIR:-target}/release/credvault
python3 -c 'import grpc, grpc_tools' 2>/dev/null || pip install --quiet -r examples/python/requirements.txt

work=$(mktemp -d)
pids=()
cleanup() {
  [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=$(port); msg=$(port); grpc=$(port)
"$prism" mock -p "$api" tests/fixtures/twilio/twilio_api_v2010.yaml > "$work/prism-api.log" 2>&1 & pids+=($!)
"$prism" mock -p "$msg" tests/fixtures/twilio/twilio_messaging_v1.yaml > "$work/prism-msg.log" 2>&1 & pids+=($!)
for p in "$api" "$msg"; do
  for _ in $(seq 600); do (echo > "/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
done
CREDVAULT_TWILIO_API_BASE=http://127.0.0.1:$api CREDVAULT_TWILIO_MESSAGING_BASE=http://127.0.0.1:$msg \
  "$bin" serve --listen "127.0.0.1:$grpc" --data-dir "$work/data" > "$work/server.log" 2>&1 & pids+=($!)
export CREDVAULT_ADDR=http://127.0.0.1:$grpc CREDVAULT_TOKEN_FILE=$work/data/admin.token
for _ in $(seq 100); do "$bin" health --timeout 1s >/dev/null 2>&1 && break; sleep 0.1; done
"$bin" health

check() { # name, output file: the walk went through, and no secret was printed
  grep -q '^validated: valid=[Tt]rue step=VALIDATION_STEP_TEST_MESSAGE' "$2" || { echo "$1: not validated"; exit 1; }
  grep -q '^deleted ' "$2" || { echo "$1: did not finish"; exit 1; }
  if grep -q '0123456789abcdef0123456789abcdef' "$2"; then echo "$1 printed the secret"; exit 1; fi
}
echo "--- examples/rust_client.rs"
cargo run --quiet --release --example rust_client | tee "$work/rust.out"
check rust_client "$work/rust.out"
echo "--- examples/python/client.py"
python3 examples/python/client.py | tee "$work/python.out"
check python "$work/python.out"
echo "60-clients: both examples ran against a real server"

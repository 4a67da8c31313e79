#!/usr/bin/env bash
# Two credvault instances over a local 3-member etcd cluster, on loopback: an Add on instance A,
# a Resolve of it on instance B, a Delete on B, and A answering NOT_FOUND at once.
#
#   bash examples/several-instances.sh
#
# Needs `etcd` on PATH (Debian/Ubuntu: apt-get install etcd-server); builds credvault if
# target/release/credvault is not there. Everything lives in a temp dir and is stopped on exit.
# Ports (override with the variables): etcd clients 23791-23793, peers 23801-23803, credvault
# A on 50061 and B on 50062.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${CREDVAULT_BIN:-${CARGO_TARGET_DIR:-target}/release/credvault}
[ -x "$bin" ] || cargo build --release --bin credvault
command -v etcd >/dev/null || { echo "no etcd on PATH (apt-get install etcd-server)"; exit 1; }
client_base=${ETCD_CLIENT_PORT_BASE:-23790}
peer_base=${ETCD_PEER_PORT_BASE:-23800}
port_a=${CREDVAULT_PORT_A:-50061}
port_b=${CREDVAULT_PORT_B:-50062}

work=$(mktemp -d)
pids=()
cleanup() {
  [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# 1. A 3-member etcd cluster.
cluster=""
for i in 1 2 3; do
  cluster+="${cluster:+,}m$i=http://127.0.0.1:$((peer_base + i))"
done
endpoints=""
for i in 1 2 3; do
  client="http://127.0.0.1:$((client_base + i))"
  peer="http://127.0.0.1:$((peer_base + i))"
  endpoints+="${endpoints:+,}$client"
  etcd --name "m$i" --data-dir "$work/etcd-m$i" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "$cluster" --initial-cluster-state new \
    2>"$work/etcd-m$i.log" &
  pids+=($!)
done
echo "etcd cluster: $endpoints"

# 2. Two credvault instances over it. They share the root key (instances must); each has its own
#    data dir for its audit log and its bootstrap admin token. They wait for etcd to answer.
head -c 32 /dev/urandom >"$work/root.key"
chmod 600 "$work/root.key"
for name in a b; do
  port=$port_a
  [ "$name" = b ] && port=$port_b
  CREDVAULT_STORE=etcd CREDVAULT_ETCD_ENDPOINTS="$endpoints" \
    CREDVAULT_MASTER_KEY_FILE="$work/root.key" CREDVAULT_DATA_DIR="$work/$name" \
    CREDVAULT_LISTEN="127.0.0.1:$port" \
    "$bin" serve 2>"$work/credvault-$name.log" &
  pids+=($!)
  # B starts once A has made the keyring (whoever starts first makes it; the other opens it).
  for _ in $(seq 1 150); do
    "$bin" health --addr "http://127.0.0.1:$port" >/dev/null 2>&1 && break
    sleep 0.2
  done
  "$bin" health --addr "http://127.0.0.1:$port" >/dev/null || {
    echo "credvault $name did not start:"; tail -20 "$work/credvault-$name.log"; exit 1;
  }
  echo "credvault $name: serving on 127.0.0.1:$port"
done
on() { # on a|b <credvault client command...>
  local name=$1 port=$port_a
  shift
  [ "$name" = b ] && port=$port_b
  "$bin" "$@" --addr "http://127.0.0.1:$port" --token-file "$work/$name/admin.token"
}

# 3. Add on A (a made-up auth token, on stdin: never on the command line).
echo
echo "\$ credvault add demo sms ...   # on A"
printf '%s' "f00dfeedcafe0123456789abcdef4242" | on a add demo sms \
  --account-sid AC0123456789abcdef0123456789abcdef \
  --messaging-service-sid MG0123456789abcdef0123456789abcdef --secret-stdin

# 4. Resolve on B: the same credential, read from etcd.
echo
echo "\$ credvault resolve demo sms --show-secrets   # on B"
on b resolve demo sms --show-secrets

# 5. Delete on B; A says NOT_FOUND at once (linearizable reads).
echo
echo "\$ credvault delete demo sms   # on B"
on b delete demo sms
echo
echo "\$ credvault resolve demo sms   # on A"
if on a resolve demo sms; then
  echo "A still resolves a credential deleted on B"; exit 1
fi
echo
echo "two instances, one set of credentials: done"

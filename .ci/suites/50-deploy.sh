#!/usr/bin/env bash
# The deploy files: the systemd unit passes `systemd-analyze verify` (pointed at the release
# binary, as the unit's ExecStart must exist), and the Kubernetes manifests parse as YAML with
# the objects they claim. The Dockerfile is not built here (no Docker daemon in CI).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$(pwd)/$target" ;; esac
bin="$target/release/credvault"
[ -x "$bin" ] || { echo "50-deploy: no release binary at $bin (cargo build --release)"; exit 1; }
python3 -c 'import yaml' 2>/dev/null || pip install --quiet pyyaml
if command -v systemd-analyze >/dev/null 2>&1; then
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  sed "s|/usr/local/bin/credvault|$bin|" deploy/credvault.service > "$dir/credvault.service"
  out=$(systemd-analyze verify "$dir/credvault.service" 2>&1) || { echo "$out"; exit 1; }
  # verify exits 0 on some warnings; any line about the unit is a finding.
  if printf '%s\n' "$out" | grep -q 'credvault.service'; then echo "$out"; exit 1; fi
  for want in DynamicUser=yes StateDirectory=credvault ProtectSystem=strict ProtectHome=yes \
      PrivateTmp=yes NoNewPrivileges=yes LimitCORE=0 SystemCallFilter=@system-service \
      'LoadCredential=master.key:'; do
    grep -q "^$want" deploy/credvault.service || { echo "credvault.service lacks $want"; exit 1; }
  done
  grep -qx 'CapabilityBoundingSet=' deploy/credvault.service || { echo "capabilities not empty"; exit 1; }
  echo "50-deploy: deploy/credvault.service verified"
elif [ "${CI:-}" = "true" ]; then
  echo "50-deploy: CI=true but no systemd-analyze"; exit 1
else
  echo "50-deploy: no systemd-analyze: the unit was not verified"
fi
python3 - <<'PY'
import yaml
docs = list(yaml.safe_load_all(open("deploy/kubernetes/credvault.yaml")))
kinds = sorted(d["kind"] for d in docs)
assert kinds == ["Service", "StatefulSet"], kinds
pod = next(d for d in docs if d["kind"] == "StatefulSet")["spec"]["template"]["spec"]
assert pod["enableServiceLinks"] is False
app = pod["containers"][0]
assert "grpc" in app["readinessProbe"] and "grpc" in app["livenessProbe"]
print("50-deploy: deploy/kubernetes/credvault.yaml parses:", ", ".join(kinds))
PY

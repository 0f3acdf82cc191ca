#!/usr/bin/env bash
# Runs licensewatch against the built-in simulated tenant: starts `licensewatch sim`, runs license-check and
# grace-period-notify (dry run) with a temporary state store, prints what they found, and stops the simulator.
# Until `licensewatch demo` lands, this is the quickest way to see licensewatch work with no tenant at all.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p licensewatch
bin=target/release/licensewatch
work=$(mktemp -d)
trap 'kill "${sim_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" sim --port 0 > "$work/sim.out" 2>/dev/null &
sim_pid=$!
for _ in $(seq 50); do [ -s "$work/sim.out" ] && break; sleep 0.1; done
base=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["base_url"])' "$work/sim.out")
tenant=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["tenant_id"])' "$work/sim.out")
cat > "$work/licensewatch.toml" <<TOML
[notify]
admins = ["it-team@contoso.com"]
sender = "it.admin@contoso.onmicrosoft.com"
TOML
export LICENSEWATCH_TENANT_ID="$tenant" LICENSEWATCH_CLIENT_ID=00000000-0000-0000-0000-00000000c0de \
  LICENSEWATCH_CLIENT_SECRET=simulated LICENSEWATCH_GRAPH_URL="$base" LICENSEWATCH_LOGIN_URL="$base" \
  LICENSEWATCH_MANAGE_URL="$base" LICENSEWATCH_NOW=2026-11-21T09:00:00Z LICENSEWATCH_STATE="sqlite:$work/state.db" \
  LICENSEWATCH_CONFIG="$work/licensewatch.toml"
echo "== licensewatch check (simulated tenant $tenant at $base)"
"$bin" check
echo
echo "== licensewatch notify --dry-run"
"$bin" notify --dry-run 2>/dev/null

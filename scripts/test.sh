#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what the tests need when missing (scripts/test-deps.sh:
# moto, Microsoft's Graph SDK and MSAL for Python, pypdf, headless Chromium), starts moto, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${LICENSEWATCH_VENV:-$PWD/.venv}"
./scripts/test-deps.sh

if [ -z "${LICENSEWATCH_TEST_MOTO_URL:-}" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$VENV/bin/python" scripts/moto/serve.py "$port" >"${TMPDIR:-/tmp}/licensewatch-moto-$port.log" 2>&1 &
  moto_pid=$!
  trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
  python3 - "$port" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/"
for _ in range(300):
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("test.sh: moto did not start within 30 s")
PY
  export LICENSEWATCH_TEST_MOTO_URL="http://127.0.0.1:$port"
fi

# A PDF reader other than our writer reads the statements back (cli/tests/cli/statement.rs).
export LICENSEWATCH_TEST_PYTHON="$VENV/bin/python"
# Six tests at once on two cores: most of a test's time is spent waiting on a local server (the simulated tenant, moto,
# the CLI it starts), so with one test a core the cores sit two-thirds idle (docs/BENCHMARKS.md).
threads="${LICENSEWATCH_TEST_THREADS:-6}"
if command -v cargo-nextest >/dev/null 2>&1; then
  runner=(cargo nextest run --workspace --test-threads "$threads")
else
  export RUST_TEST_THREADS="$threads"
  runner=(cargo test --workspace)
fi
# One build for everything: the test binaries and the `licensewatch` binary they start, with the features the tests
# unify (a separate `cargo build` of the CLI would compile tokio and everything above it a second time).
"${runner[@]}" --no-run "$@"
"$VENV/bin/python" tests/sdk/conformance.py "${CARGO_TARGET_DIR:-target}/debug/licensewatch"
"${runner[@]}" --no-fail-fast "$@"

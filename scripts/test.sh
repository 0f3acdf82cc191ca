#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs or starts what the tests need, then runs every test.
#  - moto in server mode (the local AWS for the DynamoDB, S3 and SQS adapters), from PyPI into ./.venv;
#  - Microsoft's Graph SDK and MSAL for Python (the simulator's conformance suite), from PyPI into ./.venv;
#  - headless Chromium (the report is rendered once), from Debian when missing and running as root.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${LICENSEWATCH_VENV:-$PWD/.venv}"

ensure_venv() {
  if [ ! -x "$VENV/bin/pip" ]; then
    if ! python3 -m venv "$VENV" 2>/dev/null; then
      if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$VENV"
      else
        echo "test.sh: python3 -m venv failed; install python3-venv" >&2
        exit 1
      fi
    fi
  fi
}

if [ -z "${LICENSEWATCH_TEST_MOTO_URL:-}" ]; then
  if [ ! -x "$VENV/bin/moto_server" ]; then
    ensure_venv
    echo "test.sh: installing moto[server] into $VENV" >&2
    "$VENV/bin/pip" install -q 'moto[server]'
  fi
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

if [ -z "${LICENSEWATCH_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing Debian's chromium for the report rendering test" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "test.sh: chromium is missing; install Debian's chromium package (or set LICENSEWATCH_CHROMIUM)" >&2
    exit 1
  fi
fi

# The simulated tenant answers Microsoft's own client libraries (tests/sdk/conformance.py).
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import msgraph, msal, deprecated, pypdf' 2>/dev/null; then
  ensure_venv
  echo "test.sh: installing msgraph-sdk, msal and pypdf into $VENV" >&2
  "$VENV/bin/pip" install -q msgraph-sdk msal Deprecated pypdf
fi
# A PDF reader other than our writer reads the statements back (cli/tests/cli/statement.rs).
export LICENSEWATCH_TEST_PYTHON="$VENV/bin/python"
if command -v cargo-nextest >/dev/null 2>&1; then
  runner=(cargo nextest run --workspace)
else
  runner=(cargo test --workspace)
fi
# One build for everything: the test binaries and the `licensewatch` binary they start, with the features the tests
# unify (a separate `cargo build` of the CLI would compile tokio and everything above it a second time).
"${runner[@]}" --no-run "$@"
"$VENV/bin/python" tests/sdk/conformance.py "${CARGO_TARGET_DIR:-target}/debug/licensewatch"
"${runner[@]}" --no-fail-fast "$@"

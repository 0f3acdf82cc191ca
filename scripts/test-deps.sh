#!/usr/bin/env bash
# What the tests need besides cargo, installed when missing (scripts/test.sh runs it first; .ci/run starts it early,
# in the background, so that the downloads overlap the build):
#  - moto in server mode (the local AWS for the DynamoDB, S3 and SQS adapters), from PyPI into ./.venv;
#  - Microsoft's Graph SDK and MSAL for Python (the simulator's conformance suite) and pypdf, from PyPI into ./.venv;
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
        echo "test-deps.sh: python3 -m venv failed; install python3-venv" >&2
        exit 1
      fi
    fi
  fi
}

if [ -z "${LICENSEWATCH_TEST_MOTO_URL:-}" ] && [ ! -x "$VENV/bin/moto_server" ]; then
  ensure_venv
  echo "test-deps.sh: installing moto[server] into $VENV" >&2
  "$VENV/bin/pip" install -q --no-compile 'moto[server]'
fi

if [ -z "${LICENSEWATCH_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "test-deps.sh: installing Debian's chromium for the report rendering test" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "test-deps.sh: chromium is missing; install Debian's chromium package (or set LICENSEWATCH_CHROMIUM)" >&2
    exit 1
  fi
fi

# The simulated tenant answers Microsoft's own client libraries (tests/sdk/conformance.py).
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import msgraph, msal, deprecated, pypdf' 2>/dev/null; then
  ensure_venv
  echo "test-deps.sh: installing msgraph-sdk, msal and pypdf into $VENV" >&2
  "$VENV/bin/pip" install -q --no-compile msgraph-sdk msal Deprecated pypdf
fi

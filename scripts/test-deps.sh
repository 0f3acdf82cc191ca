#!/usr/bin/env bash
# What the tests need besides cargo, installed when missing (scripts/test.sh runs it first; .ci/run starts it early,
# in the background, so that the downloads overlap the build):
#  - moto in server mode (the local AWS for the DynamoDB, S3 and SQS adapters), from PyPI into ./.venv;
#  - Microsoft's Graph SDK and MSAL for Python (the simulator's conformance suite) and pypdf, from PyPI into ./.venv;
#  - headless Chromium (the report is rendered once), from Debian when missing and running as root.
# Python packages go in by scripts/py-install.sh (uv, else pip).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${LICENSEWATCH_VENV:-$PWD/.venv}"

if [ -z "${LICENSEWATCH_TEST_MOTO_URL:-}" ] && [ ! -x "$VENV/bin/moto_server" ]; then
  echo "test-deps.sh: installing moto[server] into $VENV" >&2
  ./scripts/py-install.sh "$VENV" 'moto[server]'
fi

if [ -z "${LICENSEWATCH_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "test-deps.sh: installing Debian's chromium for the report rendering test" >&2
    # Headless and without a GPU, Chromium needs none of what it recommends for a desktop (Mesa's drivers and LLVM,
    # the printer settings' GTK stack, udev, upower), and apt follows recommendations recursively: without them the
    # install is Chromium's own dependencies. The Liberation fonts stay, the fonts a desktop renders the report with.
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium fonts-liberation >/dev/null
  else
    echo "test-deps.sh: chromium is missing; install Debian's chromium package (or set LICENSEWATCH_CHROMIUM)" >&2
    exit 1
  fi
fi

# The simulated tenant answers Microsoft's own client libraries (tests/sdk/conformance.py).
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import msgraph, msal, deprecated, pypdf' 2>/dev/null; then
  echo "test-deps.sh: installing msgraph-sdk, msal and pypdf into $VENV" >&2
  ./scripts/py-install.sh "$VENV" msgraph-sdk msal Deprecated pypdf
fi

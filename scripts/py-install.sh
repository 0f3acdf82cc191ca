#!/usr/bin/env bash
# py-install.sh VENV PACKAGE...: installs Python packages from PyPI into the virtual environment VENV, creating it
# when missing. By uv (on PATH, or installed into VENV once), which took a third to a ninth of pip's CPU for the CI
# tools and the tests' packages (docs/BENCHMARKS.md); by pip when uv cannot be had.
set -euo pipefail
venv="${1:?py-install.sh VENV PACKAGE...}"
shift

if [ ! -x "$venv/bin/pip" ]; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$venv"
    else
      echo "py-install.sh: python3 -m venv $venv failed; install python3-venv" >&2
      exit 1
    fi
  fi
fi

uv="$(command -v uv || true)"
if [ -z "$uv" ] && { [ -x "$venv/bin/uv" ] || "$venv/bin/pip" install -q --no-compile uv >/dev/null 2>&1; }; then
  uv="$venv/bin/uv"
fi
if [ -n "$uv" ]; then
  "$uv" pip install -q --python "$venv/bin/python" "$@"
else
  "$venv/bin/pip" install -q --no-compile "$@"
fi

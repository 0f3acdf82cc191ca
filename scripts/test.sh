#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs or starts what the tests need, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Rust toolchain components named in rust-toolchain.toml are installed by rustup on first use.
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi

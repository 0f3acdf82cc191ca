#!/usr/bin/env bash
# Fuzzes one target with AFL++ for a time: fuzz/run.sh TARGET SECONDS. Installs cargo-afl when missing (stable
# toolchain; it builds AFL++ itself). Findings (crashes, hangs) land in fuzz/out/TARGET/default/.
set -euo pipefail
cd "$(dirname "$0")"
target="${1:?target (snapshot, audit_records, management_blob, graph_pages, webhook_body, webhook_source_body, webhook_headers, notification_batch, policy)}"
seconds="${2:-1200}"
command -v cargo-afl >/dev/null 2>&1 || cargo install --locked cargo-afl
cargo afl config --build >/dev/null 2>&1 || true
cargo afl build --release
target/release/seeds seeds
mkdir -p out
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1
LICENSEWATCH_FUZZ_TARGET="$target" cargo afl fuzz -V "$seconds" -i "seeds/$target" -o "out/$target" target/release/fuzz

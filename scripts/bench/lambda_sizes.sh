#!/usr/bin/env bash
# Size of each Lambda function as deployed: built on its own (so it links only its own features) with the `lambda`
# profile for arm64, stripped; and zipped with deflate as Lambda stores it. Reference: the 8 MB target of issue 15
# and the sizes before the split (docs/BENCHMARKS.md).
#
# usage: scripts/bench/lambda_sizes.sh    (needs cargo-lambda and zig: pip install cargo-lambda ziglang)
set -euo pipefail
cd "$(dirname "$0")/../.."
printf '%-22s %12s %12s %8s\n' function bootstrap zipped "build s"
for f in license-check grace-period-notify audit-fetch reprocess-user; do
  start=$(date +%s)
  cargo lambda build --profile lambda --arm64 -p "$f" >/dev/null 2>&1
  secs=$(( $(date +%s) - start ))
  bin="target/lambda/$f/bootstrap"
  python3 - "$f" "$bin" "$secs" <<'PY'
import io, os, sys, zipfile
name, path, secs = sys.argv[1:4]
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    z.write(path, "bootstrap")
print(f"{name:<22} {os.path.getsize(path) / 1e6:9.2f} MB {len(buf.getvalue()) / 1e6:9.2f} MB {secs:>8}")
PY
done

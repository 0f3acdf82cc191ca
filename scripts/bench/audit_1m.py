#!/usr/bin/env python3
"""Benchmark (issue 5): `licensewatch audit-fetch` end to end (list, fetch, parse, dedupe, compress, write) over
RECORDS records in BLOBS blobs served by the simulated tenant. Reports records/s and the peak RSS of audit-fetch.

Usage: scripts/bench/audit_1m.py [RECORDS] [BLOBS] [BINARY]   (after `cargo build --release -p licensewatch`;
BINARY defaults to target/release/licensewatch: pass another build to compare two versions side by side)
"""
import json, os, subprocess, sys, tempfile, time, urllib.request

records = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
blobs = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000
exe = sys.argv[3] if len(sys.argv) > 3 else "target/release/licensewatch"
sim = subprocess.Popen([exe, "sim", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    info = json.loads(sim.stdout.readline())
    base = info["base_url"]
    req = urllib.request.Request(f"{base}/_sim/audit/generate", method="POST", headers={"content-type": "application/json"},
                                 data=json.dumps({"records": records, "blobs": blobs}).encode())
    print(urllib.request.urlopen(req).read().decode(), file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        with open(f"{tmp}/licensewatch.toml", "w") as f:
            f.write("[audit]\nfirst_run_days = 1\n")
        env = dict(os.environ, LICENSEWATCH_TENANT_ID=info["tenant_id"],
                   LICENSEWATCH_CLIENT_ID="66666666-7777-8888-9999-000000000000", LICENSEWATCH_CLIENT_SECRET="bench",
                   LICENSEWATCH_GRAPH_URL=base, LICENSEWATCH_LOGIN_URL=base, LICENSEWATCH_MANAGE_URL=base,
                   LICENSEWATCH_STATE=f"sqlite:{tmp}/lw.db", LICENSEWATCH_ARCHIVE=f"file:{tmp}/archive",
                   LICENSEWATCH_NOW="2026-11-21T09:00:00Z", LICENSEWATCH_CONFIG=f"{tmp}/licensewatch.toml")
        out_file = open(f"{tmp}/out.json", "w+b")
        start = time.perf_counter()
        proc = subprocess.Popen([exe, "audit-fetch", "--json"], env=env, stdout=out_file, stderr=subprocess.PIPE)
        peak = 0
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as st:
                    peak = max([peak] + [int(l.split()[1]) for l in st if l.startswith("VmHWM")])
            except OSError:
                pass
            time.sleep(0.05)
        wall = time.perf_counter() - start
        _, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(err.decode()[:2000])
        out_file.seek(0)
        report = json.loads(out_file.read())
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(f"{tmp}/archive") for f in fs)
    print(json.dumps({"records_archived": report["records_archived"], "blobs_fetched": report["blobs_fetched"],
                      "wall_s": round(wall, 2), "records_per_s": round(report["records_archived"] / wall),
                      "peak_rss_mib": round(peak / 1024, 1), "archive_mib": round(size / 2**20, 1)}))
finally:
    sim.kill()

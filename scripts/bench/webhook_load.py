#!/usr/bin/env python3
"""Benchmark (issue 7): load on `licensewatch serve` over loopback for SECONDS each with valid signed requests and
with bad signatures; reports requests/s, p50/p99 and the server's RSS at start and end.

Usage: scripts/bench/webhook_load.py [SECONDS] [CONCURRENCY]
(after `cargo build --release -p licensewatch --examples`)
"""
import json, os, subprocess, sys, tempfile, time

seconds = sys.argv[1] if len(sys.argv) > 1 else "60"
concurrency = sys.argv[2] if len(sys.argv) > 2 else "64"
secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))

with tempfile.TemporaryDirectory() as tmp:
    policy = f"{tmp}/licensewatch.toml"
    with open(policy, "w") as f:
        f.write('[webhook]\nsecrets_env = ["LW_WEBHOOK_SECRET"]\n[remediation]\nmax_actions_per_hour = 1000000000\n')
    env = dict(os.environ, LICENSEWATCH_TENANT_ID="48a80680-7326-48cd-9935-b556b81d3a4e",
               LICENSEWATCH_CLIENT_ID="66666666-7777-8888-9999-000000000000", LICENSEWATCH_CLIENT_SECRET="bench",
               LICENSEWATCH_GRAPH_URL="http://127.0.0.1:9", LICENSEWATCH_LOGIN_URL="http://127.0.0.1:9",
               LICENSEWATCH_STATE=f"sqlite:{tmp}/lw.db", LICENSEWATCH_CONFIG=policy, LW_WEBHOOK_SECRET=secret)
    serve = subprocess.Popen(["target/release/licensewatch", "serve", "--port", "0", "--no-worker"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = json.loads(serve.stdout.readline())["base_url"]
        time.sleep(0.5)
        results = {"rss_start_mib": round(rss_kib(serve.pid) / 1024, 1)}
        for mode in ("bad", "valid"):
            out = subprocess.run(["target/release/examples/webhook_load", "--url", url, "--secret", secret, "--mode",
                                  mode, "--seconds", seconds, "--concurrency", concurrency],
                                 capture_output=True, text=True, check=True)
            results[mode] = json.loads(out.stdout)
            results[f"rss_after_{mode}_mib"] = round(rss_kib(serve.pid) / 1024, 1)
        print(json.dumps(results))
    finally:
        serve.kill()

#!/usr/bin/env python3
"""Benchmark (issues 4 and 33): `licensewatch check` against `licensewatch sim --users 100000` with 20 ms injected
latency on every Graph request, under the simulator's identity resource-unit budget. Reports wall time, the lower
bound (Graph requests x latency), their ratio, CPU time, peak RSS of the check process and the 429s received.

Usage: scripts/bench/check_100k.py [USERS] [LATENCY_MS] [BINARY]   (after `cargo build --release -p licensewatch`;
BINARY defaults to target/release/licensewatch: pass another build to compare side by side)
"""
import json, os, resource, subprocess, sys, tempfile, time, urllib.request

users = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
latency_ms = int(sys.argv[2]) if len(sys.argv) > 2 else 20
exe = sys.argv[3] if len(sys.argv) > 3 else "target/release/licensewatch"
sim = subprocess.Popen([exe, "sim", "--port", "0", "--users", str(users)], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
try:
    info = json.loads(sim.stdout.readline())
    base = info["base_url"]
    req = urllib.request.Request(f"{base}/_sim/faults", method="POST", headers={"content-type": "application/json"},
                                 data=json.dumps({"route": "/v1.0/", "kind": "latency", "latency_ms": latency_ms}).encode())
    urllib.request.urlopen(req)
    with tempfile.TemporaryDirectory() as tmp:
        # Full reads on both runs (the incremental runs are measured by check_delta.py).
        with open(f"{tmp}/licensewatch.toml", "w") as f:
            f.write("[check]\nfull_scan_hours = 0\n")
        env = dict(os.environ, LICENSEWATCH_TENANT_ID=info["tenant_id"], LICENSEWATCH_CONFIG=f"{tmp}/licensewatch.toml",
                   LICENSEWATCH_CLIENT_ID="66666666-7777-8888-9999-000000000000", LICENSEWATCH_CLIENT_SECRET="bench",
                   LICENSEWATCH_GRAPH_URL=base, LICENSEWATCH_LOGIN_URL=base, LICENSEWATCH_MANAGE_URL=base,
                   LICENSEWATCH_STATE=f"sqlite:{tmp}/lw.db", LICENSEWATCH_NOW="2026-11-21T09:00:00Z")
        runs = []
        for label in ("first_run", "second_run"):
            # Each run is its own child process, so RUSAGE_CHILDREN's max RSS grows only if this run's is larger;
            # measure it with /proc instead.
            start = time.perf_counter()
            out_file = open(f"{tmp}/{label}.json", "w+b")
            proc = subprocess.Popen([exe, "check", "--json"], env=env, stdout=out_file, stderr=subprocess.PIPE)
            peak = 0
            while proc.poll() is None:
                try:
                    with open(f"/proc/{proc.pid}/status") as st:
                        for line in st:
                            if line.startswith("VmHWM"):
                                peak = max(peak, int(line.split()[1]))
                except OSError:
                    pass
                time.sleep(0.02)
            _, err = proc.communicate()
            out_file.seek(0)
            out = out_file.read()
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                sys.exit(f"check failed: {err.decode()[:2000]}")
            report = json.loads(out)
            runs.append((label, wall, peak, report))
    log = json.load(urllib.request.urlopen(f"{base}/_sim/requests"))
    graph = [r for r in log if r["path"].startswith("/v1.0/")]
    per_run_requests = len(graph) // 2
    # The simulator keeps Microsoft's identity budget (8,000 resource units per 10 s for this tenant size): any
    # request it refused shows as a 429 in its log.
    throttled = sum(1 for r in graph if r["status"] == 429)
    lower = per_run_requests * latency_ms / 1000
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    for label, wall, peak, report in runs:
        print(json.dumps({"run": label, "users": report["users_scanned"], "user_pages": report["pages"],
                          "graph_requests": per_run_requests, "latency_ms": latency_ms, "wall_s": round(wall, 3),
                          "lower_bound_s": round(lower, 3), "ratio": round(wall / lower, 3),
                          "peak_rss_mib": round(peak / 1024, 1), "findings": len(report["findings"]),
                          "graph_429s_both_runs": throttled}))
    print(json.dumps({"cpu_s_both_runs": round(usage.ru_utime + usage.ru_stime, 3)}))
finally:
    sim.kill()

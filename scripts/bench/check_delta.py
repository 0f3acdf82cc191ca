#!/usr/bin/env python3
"""Benchmark (issue 16): an incremental license-check (`/users/delta`) against a full read, at 1 % churn per hour.

Starts `licensewatch sim --users USERS` with LATENCY_MS of latency on every Graph request, runs a first (full)
check into two separate stores, A (default policy: incremental runs between daily full reads) and B
(`full_scan_hours = 0`: every run reads every user). Then changes CHURN_PERCENT of the users' licences (half lose
their licences, half gain one), moves the clock an hour, and times A's run (a delta round) beside B's (a full read).
Reports both walls, the speed-up, Graph requests per run, and whether the two runs' findings are identical.

Usage: scripts/bench/check_delta.py [USERS] [LATENCY_MS] [CHURN_PERCENT] [BINARY]
"""
import json, os, subprocess, urllib.error, sys, tempfile, time, urllib.request

users = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
latency_ms = int(sys.argv[2]) if len(sys.argv) > 2 else 20
churn = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
exe = sys.argv[4] if len(sys.argv) > 4 else "target/release/licensewatch"


def post(url, body):
    req = urllib.request.Request(url, method="POST", headers={"content-type": "application/json"},
                                 data=json.dumps(body).encode())
    return urllib.request.urlopen(req).read()


def check(env, tmp, label):
    start = time.perf_counter()
    proc = subprocess.run([exe, "check", "--json"], env=env, capture_output=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{label}: {proc.stderr.decode()[:2000]}")
    if os.environ.get("BENCH_SHOW_LOG"):
        print(f"--- {label} ---\n{proc.stderr.decode()}", file=sys.stderr)
    return wall, json.loads(proc.stdout)


sim = subprocess.Popen([exe, "sim", "--port", "0", "--users", str(users)], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
try:
    info = json.loads(sim.stdout.readline())
    base = info["base_url"]
    post(f"{base}/_sim/faults", {"route": "/v1.0/", "kind": "latency", "latency_ms": latency_ms})
    state = json.load(urllib.request.urlopen(f"{base}/_sim/state"))
    domain = "contoso.onmicrosoft.com"
    with tempfile.TemporaryDirectory() as tmp:
        envs = {}
        for name, toml in (("A", ""), ("B", "[check]\nfull_scan_hours = 0\n")):
            os.makedirs(f"{tmp}/{name}")
            with open(f"{tmp}/{name}/licensewatch.toml", "w") as f:
                f.write(toml)
            envs[name] = dict(os.environ, LICENSEWATCH_TENANT_ID=info["tenant_id"],
                              LICENSEWATCH_CLIENT_ID="66666666-7777-8888-9999-000000000000",
                              LICENSEWATCH_CLIENT_SECRET="bench", LICENSEWATCH_GRAPH_URL=base,
                              LICENSEWATCH_LOGIN_URL=base, LICENSEWATCH_MANAGE_URL=base,
                              LICENSEWATCH_STATE=f"sqlite:{tmp}/{name}/lw.db",
                              LICENSEWATCH_CONFIG=f"{tmp}/{name}/licensewatch.toml",
                              LICENSEWATCH_NOW="2026-11-21T09:00:00Z")
        first = {n: check(envs[n], tmp, f"first {n}") for n in ("A", "B")}
        step = max(1, int(100 / churn))
        changed = 0
        e3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
        extra = sorted(state["skus"], key=lambda k: k["consumed"] - k["enabled"])[0]["sku_id"]
        for n, i in enumerate(range(0, users, step)):
            who = f"user{i:06}@{domain}"
            # Half lose E3, half gain the SKU with the most free seats (each falls back to the other change).
            tries = [{"remove": [e3]}, {"add": [{"sku_id": extra}]}]
            for body in tries if n % 2 == 0 else tries[::-1]:
                try:
                    post(f"{base}/_sim/users/{who}/licenses", body)
                    changed += 1
                    break
                except urllib.error.HTTPError:
                    continue
        post(f"{base}/_sim/clock", {"advance_minutes": 60})
        for n in envs:
            envs[n]["LICENSEWATCH_NOW"] = "2026-11-21T10:00:00Z"
        before = len(json.load(urllib.request.urlopen(f"{base}/_sim/requests")))
        delta_wall, delta = check(envs["A"], tmp, "delta")
        mid = json.load(urllib.request.urlopen(f"{base}/_sim/requests"))
        full_wall, full = check(envs["B"], tmp, "full")
        after = json.load(urllib.request.urlopen(f"{base}/_sim/requests"))
        graph = lambda rs: sum(1 for r in rs if r["path"].startswith("/v1.0/"))
        same = json.dumps(delta["findings"], sort_keys=True) == json.dumps(full["findings"], sort_keys=True)
        print(json.dumps({"users": users, "latency_ms": latency_ms, "users_changed": changed,
                          "first_full_run_s": round(first["A"][0], 3),
                          "delta_run": {"scan": delta["scan"], "wall_s": round(delta_wall, 3),
                                        "graph_requests": graph(mid[before:])},
                          "full_run": {"scan": full["scan"], "wall_s": round(full_wall, 3),
                                       "graph_requests": graph(after[len(mid):])},
                          "speedup": round(full_wall / delta_wall, 1), "same_findings": same,
                          "findings": len(full["findings"])}))
finally:
    sim.kill()

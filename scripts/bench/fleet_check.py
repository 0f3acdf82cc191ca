#!/usr/bin/env python3
"""Benchmark (issue 17): `licensewatch check --all-tenants` over a managed-service provider's fleet.

Starts `licensewatch sim --tenants TENANTS --users USERS` (LATENCY_MS on every Graph request, as a round trip to
Microsoft), writes a policy listing every tenant as `[[tenants]]`, and runs `licensewatch check --all-tenants
--json --concurrency CONCURRENCY` twice (the first run of every tenant, then a steady run that reads /users/delta),
reporting wall time, tenants per minute, peak RSS of the licensewatch process (from /proc, sampled every 20 ms) and
how many tenants came out ok. Reference: the requests a tenant needs at LATENCY_MS, run one tenant at a time.

Usage: scripts/bench/fleet_check.py [TENANTS] [USERS] [LATENCY_MS] [CONCURRENCY]
(after `cargo build --release -p licensewatch --bins`)
"""
import json, os, subprocess, sys, tempfile, threading, time, urllib.request

tenants = int(sys.argv[1]) if len(sys.argv) > 1 else 500
users = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
latency_ms = int(sys.argv[3]) if len(sys.argv) > 3 else 20
concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 8
exe = "target/release/licensewatch"


def post(url, body, headers=None):
    req = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json", **(headers or {})})
    return urllib.request.urlopen(req).read()


def peak_rss(proc, out):
    peak = 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            break
        time.sleep(0.02)
    out.append(peak)


def run(env, label):
    started = time.perf_counter()
    proc = subprocess.Popen([exe, "check", "--all-tenants", "--json", "--concurrency", str(concurrency)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rss = []
    watcher = threading.Thread(target=peak_rss, args=(proc, rss))
    watcher.start()
    stdout, stderr = proc.communicate()
    watcher.join()
    wall = time.perf_counter() - started
    try:
        doc = json.loads(stdout)
    except json.JSONDecodeError:
        sys.exit(f"{label}: {stderr.decode()[:2000]}")
    ok = sum(1 for t in doc["tenants"] if t["status"] == "ok")
    return {"wall_s": round(wall, 2), "tenants_per_minute": round(tenants / wall * 60),
            "peak_rss_mib": round((rss[0] if rss else 0) / 1024, 1), "tenants_ok": ok,
            "users_scanned": sum(t["users_scanned"] for t in doc["tenants"])}


sim = subprocess.Popen([exe, "sim", "--port", "0", "--tenants", str(tenants), "--users", str(users)],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    info = json.loads(sim.stdout.readline())
    base, ids = info["base_url"], info["tenants"]
    if latency_ms:
        post(f"{base}/_sim/faults", {"route": "/v1.0/", "kind": "latency", "latency_ms": latency_ms})
    with tempfile.TemporaryDirectory() as tmp:
        with open(f"{tmp}/licensewatch.toml", "w") as f:
            f.write("".join(f'[[tenants]]\nid = "{t}"\n' for t in ids))
        env = dict(os.environ, LICENSEWATCH_TENANT_ID=ids[0],
                   LICENSEWATCH_CLIENT_ID="66666666-7777-8888-9999-000000000000",
                   LICENSEWATCH_CLIENT_SECRET="bench", LICENSEWATCH_GRAPH_URL=base,
                   LICENSEWATCH_LOGIN_URL=base, LICENSEWATCH_MANAGE_URL=base,
                   LICENSEWATCH_STATE=f"sqlite:{tmp}/lw.db", LICENSEWATCH_CONFIG=f"{tmp}/licensewatch.toml",
                   LICENSEWATCH_NOW="2026-11-21T09:00:00Z", RUST_LOG="warn")
        before = len(json.load(urllib.request.urlopen(f"{base}/_sim/requests")))
        first = run(env, "first")
        mid = len(json.load(urllib.request.urlopen(f"{base}/_sim/requests")))
        env["LICENSEWATCH_NOW"] = "2026-11-21T10:00:00Z"
        steady = run(env, "steady")
        after = len(json.load(urllib.request.urlopen(f"{base}/_sim/requests")))
        first["requests"] = mid - before
        steady["requests"] = after - mid
        # The bound: each tenant's requests one after another at the latency, tenants `concurrency` at once.
        bound = lambda r: round(r["requests"] * latency_ms / 1000 / concurrency, 2)
        print(json.dumps({"tenants": tenants, "users_per_tenant": users, "graph_latency_ms": latency_ms,
                          "concurrency": concurrency, "first_run": first, "steady_run": steady,
                          "reference_bound_s": {"first": bound(first), "steady": bound(steady)}}))
finally:
    sim.kill()

#!/usr/bin/env python3
"""Benchmark (issue 16): the incremental license-check run alone, repeated, for one or more builds side by side.

Starts `licensewatch sim --users 100000` with 20 ms of latency on every Graph request, runs a first (full) check
with each BINARY into a store of its own, changes 1 % of the users' licences (half lose E3, half gain a SKU), moves
the clock an hour, then runs the incremental check RUNS times per build, alternating builds, each on a fresh copy of
the store its own first run wrote (so each run applies the same round to the same snapshot, and a build pays for
what its own first run left behind, such as a write-ahead log). Reports, per build, the sorted walls, CPU (user +
system of the waited process) and peak RSS (the kernel's maxrss) of the delta runs.

Usage: scripts/bench/check_delta_loop.py RUNS BINARY [BINARY...]
"""
import json, os, shutil, subprocess, sys, tempfile, time, urllib.error, urllib.request

runs, builds = int(sys.argv[1]), sys.argv[2:]
users, latency_ms = 100_000, 20


def post(url, body):
    req = urllib.request.Request(url, method="POST", headers={"content-type": "application/json"},
                                 data=json.dumps(body).encode())
    return urllib.request.urlopen(req).read()


def timed(exe, env):
    start = time.perf_counter()
    proc = subprocess.Popen([exe, "check", "--json"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{exe}: {proc.stderr.read().decode()[:2000]}")
    return round(wall, 3), round(usage.ru_utime + usage.ru_stime, 3), round(usage.ru_maxrss / 1024, 1)


sim = subprocess.Popen([builds[0], "sim", "--port", "0", "--users", str(users)], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
try:
    info = json.loads(sim.stdout.readline())
    base = info["base_url"]
    post(f"{base}/_sim/faults", {"route": "/v1.0/", "kind": "latency", "latency_ms": latency_ms})
    skus = json.load(urllib.request.urlopen(f"{base}/_sim/state"))["skus"]
    with tempfile.TemporaryDirectory() as tmp:
        open(f"{tmp}/licensewatch.toml", "w").close()
        env = dict(os.environ, LICENSEWATCH_TENANT_ID=info["tenant_id"],
                   LICENSEWATCH_CLIENT_ID="66666666-7777-8888-9999-000000000000", LICENSEWATCH_CLIENT_SECRET="bench",
                   LICENSEWATCH_GRAPH_URL=base, LICENSEWATCH_LOGIN_URL=base, LICENSEWATCH_MANAGE_URL=base,
                   LICENSEWATCH_CONFIG=f"{tmp}/licensewatch.toml",
                   LICENSEWATCH_NOW="2026-11-21T09:00:00Z")
        for i, b in enumerate(builds):
            os.makedirs(f"{tmp}/first{i}")
            timed(b, dict(env, LICENSEWATCH_STATE=f"sqlite:{tmp}/first{i}/lw.db"))
        e3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
        extra = sorted(skus, key=lambda k: k["consumed"] - k["enabled"])[0]["sku_id"]
        for n, i in enumerate(range(0, users, 100)):
            tries = [{"remove": [e3]}, {"add": [{"sku_id": extra}]}]
            for body in tries if n % 2 == 0 else tries[::-1]:
                try:
                    post(f"{base}/_sim/users/user{i:06}@contoso.onmicrosoft.com/licenses", body)
                    break
                except urllib.error.HTTPError:
                    continue
        post(f"{base}/_sim/clock", {"advance_minutes": 60})
        env["LICENSEWATCH_NOW"] = "2026-11-21T10:00:00Z"
        results = {b: [] for b in builds}
        for _ in range(runs):
            for i, b in enumerate(builds):
                copy = f"{tmp}/run"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(f"{tmp}/first{i}", copy)
                results[b].append(timed(b, dict(env, LICENSEWATCH_STATE=f"sqlite:{copy}/lw.db")))
        for b in builds:
            walls, cpus, rss = (sorted(r[k] for r in results[b]) for k in range(3))
            print(json.dumps({"build": b, "delta_wall_s": walls, "cpu_s": cpus, "peak_rss_mib": rss}))
finally:
    sim.kill()

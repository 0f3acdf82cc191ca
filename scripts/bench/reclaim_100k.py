#!/usr/bin/env python3
"""Benchmark (issue 19): `licensewatch reclaim` over a generated tenant of USERS users (signInActivity from the
simulator, LATENCY_MS per Graph request), beside a plain Python loop that pages the same users with the same
$select and applies only the inactivity rule, in the same run. A `licensewatch check` runs first (reclaim reads its
first-seen history).

Usage: scripts/bench/reclaim_100k.py [USERS] [LATENCY_MS]   (after `cargo build --release -p licensewatch`)
"""
import datetime, json, os, subprocess, sys, tempfile, time, urllib.parse, urllib.request

users = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
latency_ms = int(sys.argv[2]) if len(sys.argv) > 2 else 20
exe = "target/release/licensewatch"
now = "2026-11-21T09:00:00Z"
sim = subprocess.Popen([exe, "sim", "--port", "0", "--users", str(users)], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)


def measured(args, env):
    """Runs one licensewatch process: wall time, peak RSS (VmHWM), stdout."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([exe, *args], env=env, stdout=out, stderr=subprocess.PIPE)
        peak = 0
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as st:
                    for line in st:
                        if line.startswith("VmHWM"):
                            peak = max(peak, int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.01)
        _, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"{args[0]} failed: {err.decode()[:2000]}")
        out.seek(0)
        return time.perf_counter() - start, peak, out.read()


try:
    info = json.loads(sim.stdout.readline())
    base, tenant = info["base_url"], info["tenant_id"]
    req = urllib.request.Request(f"{base}/_sim/faults", method="POST", headers={"content-type": "application/json"},
                                 data=json.dumps({"route": "/v1.0/", "kind": "latency", "latency_ms": latency_ms}).encode())
    urllib.request.urlopen(req)
    with tempfile.TemporaryDirectory() as tmp:
        with open(f"{tmp}/licensewatch.toml", "w") as f:
            f.write('[check]\nfull_scan_hours = 0\n[prices]\ncurrency = "EUR"\n[prices.monthly]\nENTERPRISEPACK = 23.0\n')
        env = dict(os.environ, LICENSEWATCH_TENANT_ID=tenant, LICENSEWATCH_CONFIG=f"{tmp}/licensewatch.toml",
                   LICENSEWATCH_CLIENT_ID="66666666-7777-8888-9999-000000000000", LICENSEWATCH_CLIENT_SECRET="bench",
                   LICENSEWATCH_GRAPH_URL=base, LICENSEWATCH_LOGIN_URL=base, LICENSEWATCH_MANAGE_URL=base,
                   LICENSEWATCH_STATE=f"sqlite:{tmp}/lw.db", LICENSEWATCH_NOW=now)
        measured(["check", "--json"], env)
        wall, peak, out = measured(["reclaim", "--json"], env)
        report = json.loads(out)

    # The reference: page the same users, keep the licensed ones whose last successful sign-in is too old.
    form = urllib.parse.urlencode({"client_id": "00000000-0000-0000-0000-000000000001", "client_secret": "x",
                                   "grant_type": "client_credentials",
                                   "scope": "https://graph.microsoft.com/.default"}).encode()
    token = json.load(urllib.request.urlopen(f"{base}/{tenant}/oauth2/v2.0/token", form))["access_token"]
    url = (f"{base}/v1.0/users?$select=id,userPrincipalName,displayName,mail,accountEnabled,userType,createdDateTime,"
           "assignedLicenses,licenseAssignmentStates,proxyAddresses,signInActivity&$top=999")
    limit = datetime.datetime.fromisoformat(now.replace("Z", "+00:00")) - datetime.timedelta(days=90)
    start = time.perf_counter()
    inactive = requests = 0
    while url:
        page = json.load(urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})))
        requests += 1
        for u in page["value"]:
            last = (u.get("signInActivity") or {}).get("lastSuccessfulSignInDateTime")
            if u["assignedLicenses"] and last and datetime.datetime.fromisoformat(last.replace("Z", "+00:00")) < limit:
                inactive += 1
        url = page.get("@odata.nextLink")
    python_wall = time.perf_counter() - start
    kinds = {}
    for r in report["rows"]:
        kinds[r["reason"]["kind"]] = kinds.get(r["reason"]["kind"], 0) + 1
    print(json.dumps({"users": users, "latency_ms": latency_ms, "reclaim_wall_s": round(wall, 3),
                      "reclaim_peak_rss_mib": round(peak / 1024, 1), "rows": len(report["rows"]), "by_reason": kinds,
                      "monthly_total": report["monthly_total"], "python_loop_wall_s": round(python_wall, 3),
                      "python_loop_requests": requests, "python_inactive": inactive,
                      "same_inactive_count": inactive == kinds.get("inactive", 0)}))
finally:
    sim.kill()

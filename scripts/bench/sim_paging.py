#!/usr/bin/env python3
"""Benchmark: how fast the simulated tenant serves a 100k-user tenant to a plain Graph paging loop.

Usage: scripts/bench/sim_paging.py [USERS]   (builds nothing: run `cargo build --release -p licensewatch` first)
Starts `target/release/licensewatch sim --port 0 --users USERS`, pages /v1.0/users with $top=999 and the licence
$select, and reports pages, wall time, time spent waiting for the server vs parsing JSON, and the sim's peak RSS.
"""
import json, subprocess, sys, time, urllib.parse, urllib.request

users = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
sim = subprocess.Popen(["target/release/licensewatch", "sim", "--port", "0", "--users", str(users)],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    info = json.loads(sim.stdout.readline())
    base, tenant = info["base_url"], info["tenant_id"]
    form = urllib.parse.urlencode({"client_id": "00000000-0000-0000-0000-000000000001", "client_secret": "x",
                                   "grant_type": "client_credentials",
                                   "scope": "https://graph.microsoft.com/.default"}).encode()
    token = json.load(urllib.request.urlopen(f"{base}/{tenant}/oauth2/v2.0/token", form))["access_token"]
    url = (f"{base}/v1.0/users?$select=id,userPrincipalName,mail,accountEnabled,userType,assignedLicenses,"
           "assignedPlans,licenseAssignmentStates,proxyAddresses&$top=999")
    pages = seen = 0
    wait = parse = 0.0
    start = time.perf_counter()
    while url:
        t0 = time.perf_counter()
        body = urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})).read()
        t1 = time.perf_counter()
        page = json.loads(body)
        parse += time.perf_counter() - t1
        wait += t1 - t0
        pages += 1
        seen += len(page["value"])
        url = page.get("@odata.nextLink")
    wall = time.perf_counter() - start
    rss_kb = next((int(l.split()[1]) for l in open(f"/proc/{sim.pid}/status") if l.startswith("VmHWM")), 0)
    print(json.dumps({"users": seen, "pages": pages, "wall_s": round(wall, 3), "server_wait_s": round(wait, 3),
                      "client_parse_s": round(parse, 3), "ms_per_page_server": round(1000 * wait / pages, 2),
                      "sim_peak_rss_mib": round(rss_kb / 1024, 1)}))
finally:
    sim.kill()

#!/usr/bin/env python3
"""Benchmark (issue 33, not a test): audit-fetch's first run against the strict simulator, whose directory audits
allow 5 requests per 10 s per app and tenant (Microsoft's quota), over DAYS days of RECORDS_PER_DAY directory audit
records in a USERS-user tenant. Side by side in one run:

  1. the quota's ceiling: 5 pages of 999 records per 10 s (499.5 records/s), the bound no client can pass;
  2. one long run (no deadline): wall, records/s, 429s the simulator answered;
  3. runs cut at SLICE seconds each (standing in for Lambda invocations): how many it takes, records archived once.

Usage: scripts/bench/audit_quota.py [DAYS] [RECORDS_PER_DAY] [USERS] [SLICE]
(after `cargo build --release -p licensewatch`)
"""
import json, os, subprocess, sys, tempfile, time, urllib.request

days = int(sys.argv[1]) if len(sys.argv) > 1 else 30
per_day = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
users = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
slice_s = int(sys.argv[4]) if len(sys.argv) > 4 else 30
exe = "target/release/licensewatch"
CEILING = 5 * 999 / 10


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    return urllib.request.urlopen(req, timeout=600).read()


def start_sim():
    sim = subprocess.Popen([exe, "sim", "--port", "0", "--users", str(users)], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    info = json.loads(sim.stdout.readline())
    base, tenant = info["base_url"], info["tenant_id"]
    now = json.loads(urllib.request.urlopen(f"{base}/_sim/state").read())["now"]
    return sim, base, tenant, now


def load_records(base, now_text):
    from datetime import datetime, timedelta
    now = datetime.fromisoformat(now_text.replace("Z", "+00:00"))
    first = now - timedelta(days=days) + timedelta(hours=1)
    step = timedelta(seconds=86400 / per_day * 0.99)
    batch = []
    for i in range(days * per_day):
        at = (first + step * i).isoformat().replace("+00:00", "Z")
        batch.append({"id": f"be4c0000-0000-4000-8000-{i:012d}", "activityDateTime": at,
                      "activityDisplayName": "Update user", "category": "UserManagement", "result": "success",
                      "loggedByService": "Core Directory", "operationType": "Update",
                      "initiatedBy": {"user": {"id": "a0", "userPrincipalName": "admin@contoso.onmicrosoft.com"}},
                      "targetResources": [{"id": f"u{i % users}", "type": "User"}]})
        if len(batch) == 2000:
            post(f"{base}/_sim/audit/records", {"directory": batch})
            batch = []
    if batch:
        post(f"{base}/_sim/audit/records", {"directory": batch})


def fetch(base, tenant, now, tmp, max_seconds=None):
    with open(f"{tmp}/licensewatch.toml", "w") as f:
        f.write(f"[audit]\nfirst_run_days = {days}\ncontent_types = []\n")
    env = dict(os.environ, LICENSEWATCH_TENANT_ID=tenant,
               LICENSEWATCH_CLIENT_ID="66666666-7777-8888-9999-000000000000", LICENSEWATCH_CLIENT_SECRET="bench",
               LICENSEWATCH_GRAPH_URL=base, LICENSEWATCH_LOGIN_URL=base, LICENSEWATCH_MANAGE_URL=base,
               LICENSEWATCH_STATE=f"sqlite:{tmp}/lw.db", LICENSEWATCH_ARCHIVE=f"file:{tmp}/archive",
               LICENSEWATCH_NOW=now, LICENSEWATCH_CONFIG=f"{tmp}/licensewatch.toml")
    cmd = [exe, "audit-fetch", "--json"] + (["--max-seconds", str(max_seconds)] if max_seconds else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(out.stderr[-2000:])
    return json.loads(out.stdout)


def throttled(base):
    log = json.loads(urllib.request.urlopen(f"{base}/_sim/requests").read())
    audits = [r for r in log if "/auditLogs/" in r["path"]]
    return len(audits), sum(1 for r in audits if r["status"] == 429)


results = {"days": days, "records": days * per_day, "users": users, "ceiling_records_per_s": CEILING}
for mode in ("one_run", "sliced"):
    sim, base, tenant, now = start_sim()
    try:
        load_records(base, now)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            runs, archived = 0, 0
            while True:
                runs += 1
                report = fetch(base, tenant, now, tmp, None if mode == "one_run" else slice_s)
                archived += report["records_archived"]
                if not report.get("incomplete"):
                    break
            wall = time.perf_counter() - start
            requests, refused = throttled(base)
            results[mode] = {"runs": runs, "wall_s": round(wall, 1), "records_archived": archived,
                             "records_per_s": round(archived / wall, 1), "audit_requests": requests,
                             "429s": refused}
    finally:
        sim.kill()
per_invocation = CEILING * (900 - 60)
results["lambda_invocations_at_the_ceiling"] = -(-results["records"] // int(per_invocation))
print(json.dumps(results))

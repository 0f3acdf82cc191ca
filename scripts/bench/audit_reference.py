#!/usr/bin/env python3
"""The reference loop for the audit-fetch benchmark (issue 16): what a plain script does with the Management
Activity API. Lists the blobs of the last 24 hours, downloads them (8 threads), dedupes records by `Id` in a set and
writes each blob's new records as one gzip NDJSON file (fast level, as licensewatch). No state kept between runs,
no crash safety, no licence parsing. Prints {"records": ..., "duplicates": ..., "wall_s": ...}.

Usage: scripts/bench/audit_reference.py BASE_URL TENANT_ID NOW OUT_DIR
"""
import gzip, json, os, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

base, tenant, now, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
end = datetime.fromisoformat(now.replace("Z", "")).replace(microsecond=0)
start = end - timedelta(hours=24)
feed = f"{base}/api/v1.0/{tenant}/activity/feed"
began = time.perf_counter()
token = json.loads(urllib.request.urlopen(urllib.request.Request(
    f"{base}/{tenant}/oauth2/v2.0/token", data=b"grant_type=client_credentials", method="POST")).read())["access_token"]
auth = {"authorization": f"Bearer {token}"}
listing = json.loads(urllib.request.urlopen(urllib.request.Request(
    f"{feed}/subscriptions/content?contentType=Audit.AzureActiveDirectory&startTime={start.isoformat()}"
    f"&endTime={end.isoformat()}", headers=auth)).read())


def download(blob):
    return json.loads(urllib.request.urlopen(urllib.request.Request(blob["contentUri"], headers=auth)).read())


seen, written, dups = set(), 0, 0
os.makedirs(out, exist_ok=True)
with ThreadPoolExecutor(8) as pool:
    for k, records in enumerate(pool.map(download, listing)):
        fresh = []
        for r in records:
            if r["Id"] in seen:
                dups += 1
                continue
            seen.add(r["Id"])
            fresh.append(r)
        with gzip.open(f"{out}/{k:06}.ndjson.gz", "wt", compresslevel=1) as f:
            for r in fresh:
                f.write(json.dumps(r, separators=(",", ":")))
                f.write("\n")
        written += len(fresh)
print(json.dumps({"records": written, "duplicates": dups, "wall_s": round(time.perf_counter() - began, 2)}))

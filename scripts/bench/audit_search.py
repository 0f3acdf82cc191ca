#!/usr/bin/env python3
"""Benchmark (issue 19): `licensewatch audit-search` over a local archive of DAYS days x PER_DAY records a day,
beside a brute-force scan of the same archive in Python (every object decompressed, every line that mentions the
user parsed and checked), in the same run.

Usage: scripts/bench/audit_search.py [DAYS] [PER_DAY]   (after `cargo build --release -p licensewatch --bins
--examples`). The archive is written once by the `archive_gen` example (Microsoft-shaped Azure AD records, about
1 KB each, 1,000 to an object, with the index audit-fetch writes beside each object) and kept under /tmp.
"""
import glob, gzip, json, os, subprocess, sys, tempfile, time

days = int(sys.argv[1]) if len(sys.argv) > 1 else 90
per_day = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
exe = "target/release/licensewatch"
archive = f"/tmp/licensewatch-search-{days}x{per_day}"
if not os.path.exists(f"{archive}/.complete"):
    start = time.perf_counter()
    subprocess.run(["target/release/examples/archive_gen", "--dir", archive, "--days", str(days),
                    "--per-day", str(per_day)], check=True)
    open(f"{archive}/.complete", "w").close()
    print(json.dumps({"archive_written_s": round(time.perf_counter() - start, 1)}))
objects = glob.glob(f"{archive}/management_api/**/*.ndjson.gz", recursive=True)
size = sum(os.path.getsize(o) for o in objects)
print(json.dumps({"archive": archive, "objects": len(objects), "records": days * per_day,
                  "compressed_mib": round(size / 2**20, 1)}))


def run(args):
    """One audit-search process: wall time, peak RSS (VmHWM), matches."""
    with tempfile.TemporaryDirectory() as tmp:
        open(f"{tmp}/none.toml", "w").close()
        env = dict(os.environ, LICENSEWATCH_TENANT_ID="48a80680-7326-48cd-9935-b556b81d3a4e",
                   LICENSEWATCH_CLIENT_ID="66666666-7777-8888-9999-000000000000", LICENSEWATCH_CLIENT_SECRET="bench",
                   LICENSEWATCH_ARCHIVE=f"file:{archive}", LICENSEWATCH_STATE=f"sqlite:{tmp}/lw.db",
                   LICENSEWATCH_CONFIG=f"{tmp}/none.toml")
        start = time.perf_counter()
        out_file = open(f"{tmp}/out.ndjson", "w+b")
        proc = subprocess.Popen([exe, "audit-search", "--json", *args], env=env, stdout=out_file,
                                stderr=subprocess.PIPE)
        peak = 0
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as st:
                    for l in st:
                        if l.startswith("VmHWM"):
                            peak = max(peak, int(l.split()[1]))
            except OSError:
                pass
            time.sleep(0.005)
        out_file.seek(0)
        out = out_file.read().splitlines()
        _, err = proc.communicate()
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"audit-search failed: {err.decode()}")
        return wall, peak, [json.loads(l) for l in out], err.decode().strip()


def brute_force(user=None, actor=None):
    """Every object, every line: the reference answer and time."""
    start = time.perf_counter()
    ids = []
    needle = (user or actor).lower()
    for path in objects:
        with gzip.open(path, "rt") as f:
            for line in f:
                if needle not in line.lower():
                    continue
                r = json.loads(line)
                subjects = {str(r.get("ObjectId", "")).lower()} | {str(t.get("ID", "")).lower() for t in r.get("Target", [])}
                actors = {str(r.get("UserId", "")).lower()} | {str(a.get("ID", "")).lower() for a in r.get("Actor", [])}
                if user and user.lower() not in subjects | actors:
                    continue
                if actor and actor.lower() not in actors:
                    continue
                ids.append(r["Id"])
    return time.perf_counter() - start, ids


for label, args, reference in [
    ("user", ["--user", "user004242@contoso.com"], {"user": "user004242@contoso.com"}),
    ("user, one operation", ["--user", "user004242@contoso.com", "--operation", "Change user license"], None),
    ("actor on one day", ["--actor", "admin07@contoso.com", "--from", "2026-11-01", "--to", "2026-11-02"], None),
]:
    wall, peak, hits, summary = run(args)
    row = {"search": label, "wall_s": round(wall, 3), "peak_rss_mib": round(peak / 1024, 1), "matches": len(hits),
           "summary": summary}
    if reference:
        bwall, ids = brute_force(**reference)
        row["brute_force_python_s"] = round(bwall, 1)
        row["same_records"] = sorted(ids) == sorted(h["record"]["Id"] for h in hits)
    print(json.dumps(row))

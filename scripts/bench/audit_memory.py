#!/usr/bin/env python3
"""Benchmark (issue 16): where audit-fetch's memory and CPU go. One `licensewatch audit-fetch` run over RECORDS
records in BLOBS blobs of the simulated tenant (as the first row of audit_1m.py), reporting wall time, CPU per
record (user + system of the waited child) and the peaks of VmRSS, RssAnon (heap and stacks) and RssFile (the mapped
binary), read every 10 ms. Extra `[audit]` settings can be given to compare, e.g. "max_parallel_blobs = 4".

Usage: scripts/bench/audit_memory.py BINARY [RECORDS] [BLOBS] ["audit setting" ...]
With PERF=FILE in the environment the run is recorded by `perf record -g` into FILE.
"""
import json, os, resource, subprocess, sys, tempfile, time, urllib.request

exe = sys.argv[1] if len(sys.argv) > 1 else "target/release/licensewatch"
records = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
blobs = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000
settings = sys.argv[4:]

sim = subprocess.Popen([exe, "sim", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    info = json.loads(sim.stdout.readline())
    base = info["base_url"]
    urllib.request.urlopen(urllib.request.Request(
        f"{base}/_sim/audit/generate", method="POST", headers={"content-type": "application/json"},
        data=json.dumps({"records": records, "blobs": blobs}).encode())).read()
    with tempfile.TemporaryDirectory() as tmp:
        with open(f"{tmp}/licensewatch.toml", "w") as f:
            f.write("[audit]\nfirst_run_days = 1\n" + "".join(f"{s}\n" for s in settings))
        env = dict(os.environ, LICENSEWATCH_TENANT_ID=info["tenant_id"],
                   LICENSEWATCH_CLIENT_ID="66666666-7777-8888-9999-000000000000", LICENSEWATCH_CLIENT_SECRET="bench",
                   LICENSEWATCH_GRAPH_URL=base, LICENSEWATCH_LOGIN_URL=base, LICENSEWATCH_MANAGE_URL=base,
                   LICENSEWATCH_STATE=f"sqlite:{tmp}/lw.db", LICENSEWATCH_ARCHIVE=f"file:{tmp}/archive",
                   LICENSEWATCH_NOW="2026-11-21T09:00:00Z", LICENSEWATCH_CONFIG=f"{tmp}/licensewatch.toml")
        cmd = [exe, "audit-fetch", "--json"]
        if os.environ.get("PERF"):
            cmd = ["perf", "record", "-F", "499", "-g", "-o", os.environ["PERF"], "--"] + cmd
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        peak = {}
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as st:
                    for line in st:
                        key = line.split(":")[0]
                        if key in ("VmRSS", "RssAnon", "RssFile"):
                            peak[key] = max(peak.get(key, 0), int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.01)
        wall = time.perf_counter() - start
        out, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(err.decode()[-2000:])
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        archived = json.loads(out)["records_archived"]
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        mib = {k: f"{v / 1024:.1f} MiB" for k, v in peak.items()}
        print(f"{' '.join(settings) or 'defaults'}: {archived:,} archived, {wall:.2f} s, "
              f"{cpu * 1e6 / max(archived, 1):.2f} µs CPU a record, peak {mib}", flush=True)
finally:
    sim.kill()
    sim.wait()

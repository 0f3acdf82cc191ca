#!/usr/bin/env python3
"""Benchmark (issues 5 and 16): `licensewatch audit-fetch` end to end (list, download, parse, dedupe, compress,
write, index) over RECORDS records in BLOBS blobs, 1 % of them repeated across blobs, side by side in one run:

  1. licensewatch against the simulated tenant (`licensewatch sim`, `/_sim/audit/generate`);
  2. licensewatch against a plain Python feed server (scripts/bench/audit_feed.py, the same records);
  3. a plain Python reference loop (scripts/bench/audit_reference.py) against the same Python feed.

For each: wall time, records/s, CPU time of the fetching process per record (user + system, from the kernel's
accounting of the waited child), and its peak RSS (VmHWM).

Usage: scripts/bench/audit_1m.py [RECORDS] [BLOBS] [BINARY]   (after `cargo build --release -p licensewatch`;
BINARY defaults to target/release/licensewatch: pass another build to compare two versions)
"""
import json, os, resource, subprocess, sys, tempfile, time, urllib.request

records = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
blobs = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000
exe = sys.argv[3] if len(sys.argv) > 3 else "target/release/licensewatch"
NOW = "2026-11-21T09:00:00Z"
here = os.path.dirname(os.path.abspath(__file__))


def measure(cmd, env, out_path):
    """Runs cmd to the end; returns (wall s, CPU s, peak RSS MiB, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out_path, "w+b") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.PIPE)
        peak = 0
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as st:
                    peak = max([peak] + [int(l.split()[1]) for l in st if l.startswith("VmHWM")])
            except OSError:
                pass
            time.sleep(0.02)
        wall = time.perf_counter() - start
        err = proc.stderr.read()
        if proc.returncode != 0:
            sys.exit(err.decode()[:2000])
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        text = out.read().decode()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, peak / 1024, text


def licensewatch(base, tenant, tmp):
    with open(f"{tmp}/licensewatch.toml", "w") as f:
        f.write("[audit]\nfirst_run_days = 1\n")
    env = dict(os.environ, LICENSEWATCH_TENANT_ID=tenant,
               LICENSEWATCH_CLIENT_ID="66666666-7777-8888-9999-000000000000", LICENSEWATCH_CLIENT_SECRET="bench",
               LICENSEWATCH_GRAPH_URL=base, LICENSEWATCH_LOGIN_URL=base, LICENSEWATCH_MANAGE_URL=base,
               LICENSEWATCH_STATE=f"sqlite:{tmp}/lw.db", LICENSEWATCH_ARCHIVE=f"file:{tmp}/archive",
               LICENSEWATCH_NOW=NOW, LICENSEWATCH_CONFIG=f"{tmp}/licensewatch.toml")
    wall, cpu, peak, out = measure([exe, "audit-fetch", "--json"], env, f"{tmp}/out.json")
    report = json.loads(out)
    return wall, cpu, peak, report["records_archived"], report["duplicates_skipped"]


def reference(base, tenant, tmp):
    wall, cpu, peak, out = measure([sys.executable, f"{here}/audit_reference.py", base, tenant, NOW, f"{tmp}/ref"],
                                   dict(os.environ), f"{tmp}/ref.json")
    report = json.loads(out)
    return wall, cpu, peak, report["records"], report["duplicates"]


def row(name, result):
    wall, cpu, peak, archived, dups = result
    print(f"| {name} | {archived:,} | {dups:,} | {wall:.2f} s | {archived / wall:,.0f} | "
          f"{cpu * 1e6 / max(archived, 1):.2f} µs | {peak:.1f} MiB |", flush=True)


print(f"{records:,} records in {blobs:,} blobs\n")
print("| fetcher and feed | archived | repeats skipped | wall | records/s | CPU per record | peak RSS |")
print("|---|---|---|---|---|---|---|", flush=True)
sim = subprocess.Popen([exe, "sim", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    info = json.loads(sim.stdout.readline())
    req = urllib.request.Request(f"{info['base_url']}/_sim/audit/generate", method="POST",
                                 headers={"content-type": "application/json"},
                                 data=json.dumps({"records": records, "blobs": blobs}).encode())
    urllib.request.urlopen(req).read()
    with tempfile.TemporaryDirectory() as tmp:
        row("licensewatch, simulated tenant", licensewatch(info["base_url"], info["tenant_id"], tmp))
finally:
    sim.kill()
feed = subprocess.Popen([sys.executable, f"{here}/audit_feed.py", str(records), str(blobs), NOW],
                        stdout=subprocess.PIPE, text=True)
try:
    info = json.loads(feed.stdout.readline())
    with tempfile.TemporaryDirectory() as tmp:
        row("licensewatch, Python feed", licensewatch(info["base_url"], info["tenant_id"], tmp))
    with tempfile.TemporaryDirectory() as tmp:
        row("Python reference loop, Python feed", reference(info["base_url"], info["tenant_id"], tmp))
finally:
    feed.kill()

#!/usr/bin/env python3
"""Cost model (issue 17): the monthly AWS bill of one 10,000-user tenant and of a 500-tenant MSP fleet, computed from
a measured run, not guessed.

It starts moto counting every request (scripts/moto/serve.py PORT --count) and, for two tenant sizes (the fleet's
and twice it; the large tenant is carried along that line, as moto cannot hold it), a simulated tenant (`licensewatch sim --tenants 1 --users N`, LATENCY_MS on every request as a round trip to Microsoft), then
runs the Lambda handlers as deployed (tests/examples/cost_run.rs: license-check's first and hourly runs,
audit-fetch's first run and a run with nothing new, grace-period-notify's daily run, a schedule's fan-out over the
fleet) and reads, per invocation, the wall and CPU time and the AWS requests and billed units it caused. The bill
follows from the schedules (hourly check, 15-minute audit-fetch, daily notify), the functions' memory in
infra/template.yaml and the public on-demand prices (us-east-1, arm64; override with --prices FILE.json). What is
not measured is said so in the output (the audit volume per user, SQS event-source polling, CloudWatch).

Usage: scripts/bench/cost.py [--json] [--users 10000] [--fleet-tenants 500] [--fleet-users 1000]
                             [--latency-ms 20] [--records-per-user-day 5] [--licence-changes-per-user-month 0.3]
                             [--prices FILE]
(after `cargo build --release -p licensewatch --bins -p e2e --examples`)
"""
import argparse, json, math, os, socket, subprocess, sys, time, urllib.request

# us-east-1 list prices (USD), arm64 Lambda, DynamoDB on-demand (the November 2024 prices), S3 Standard, SQS standard.
PRICES = {
    "lambda_gb_s": 0.0000133334, "lambda_request": 0.20 / 1e6,
    "dynamodb_wru": 0.625 / 1e6, "dynamodb_rru": 0.125 / 1e6, "dynamodb_gb_month": 0.25,
    "s3_put": 0.005 / 1000, "s3_get": 0.0004 / 1000, "s3_gb_month": 0.023,
    "sqs_request": 0.40 / 1e6, "secret_month": 0.40, "secret_10k_calls": 0.05,
}
MEMORY_MB = {"license-check": 1024, "audit-fetch": 512, "grace-period-notify": 256}
# Lambda gives a function one vCPU at 1,769 MB and a share in proportion below it: CPU work measured here on a full
# core takes 1769/MB times as long there.
FULL_CORE_MB = 1769
MONTH = {"hourly": 730, "quarter_hourly": 2920, "daily": 30.4}
# An SQS event source keeps five long-polling receivers per queue (20 s waits): about 3 requests a minute each,
# whether or not messages come. Not measured here: AWS's documented behaviour.
POLL_REQUESTS_PER_QUEUE_MONTH = 5 * 3 * 60 * MONTH["hourly"]
EXE = "target/release/licensewatch"
RUN = "target/release/examples/cost_run"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer")


def measure(moto, users, latency_ms, fan_out):
    sim = subprocess.Popen([EXE, "sim", "--port", "0", "--tenants", "1", "--users", str(users)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        info = json.loads(sim.stdout.readline())
        base, tenant = info["base_url"], info["tenants"][0]
        domain = "customer001.onmicrosoft.com"
        if latency_ms:
            req = urllib.request.Request(f"{base}/_sim/faults", method="POST", headers={"content-type": "application/json"},
                                         data=json.dumps({"route": "/", "kind": "latency", "latency_ms": latency_ms}).encode())
            urllib.request.urlopen(req).read()
        out = subprocess.run([RUN, moto, base, tenant, domain, str(fan_out)], capture_output=True, text=True,
                             env=dict(os.environ, RUST_LOG="error"))
        if out.returncode != 0:
            sys.exit(f"cost_run failed: {out.stderr[-3000:]}")
        doc = json.loads(out.stdout)
        return {r["name"]: r for r in doc["runs"]}, doc
    finally:
        sim.kill()
        sim.wait()


def scaled(a, b, ua, ub, u):
    """Every figure of a run at `u` users, on the line through its values at `ua` and `ub` users (the requests and
    units our code makes grow with the users and their records, one per user or per record)."""
    if isinstance(a, dict):
        return {k: scaled(a.get(k, 0), b.get(k, 0), ua, ub, u) for k in set(a) | set(b)}
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return max(0.0, a + (b - a) * (u - ua) / (ub - ua))
    return b


def units(run, key):
    return run["aws"]["units"].get(key, 0.0)


def requests(run, prefix):
    return sum(n for op, n in run["aws"]["requests"].items() if op.startswith(prefix))


def s3_requests(run, ops):
    return sum(run["aws"]["requests"].get(f"s3:{op}", 0) for op in ops)


# AWS answers in single-digit milliseconds inside a region (DynamoDB, SQS) to tens (S3 PUT); moto, one Python
# request at a time, takes longer. Its own time is replaced by these, as if every request waited alone (an upper
# bound: archive claims, for one, go 16 at a time).
AWS_LATENCY_S = {"dynamodb": 0.006, "s3": 0.025, "sqs": 0.010, "secretsmanager": 0.020}


def lambda_seconds(run, function):
    """The invocation's duration on Lambda: its own waiting (Microsoft's latency) and AWS's, and its CPU work at the
    function's share of a core."""
    share = FULL_CORE_MB / MEMORY_MB[function]
    aws = sum(n * AWS_LATENCY_S.get(op.split(":")[0], 0.01) for op, n in run["aws"]["requests"].items())
    own = max(run["cpu_s"], run["wall_s"] - run["aws"]["units"].get("moto_busy_s", 0.0))
    return own + aws + run["cpu_s"] * max(0.0, share - 1)


def invocation_cost(run, function, p):
    gb_s = lambda_seconds(run, function) * MEMORY_MB[function] / 1024
    return {
        "lambda": gb_s * p["lambda_gb_s"] + p["lambda_request"],
        "dynamodb": units(run, "dynamodb_wru") * p["dynamodb_wru"] + units(run, "dynamodb_rru") * p["dynamodb_rru"],
        "s3": s3_requests(run, ["PUT", "LIST"]) * p["s3_put"] + s3_requests(run, ["GET", "HEAD"]) * p["s3_get"],
        "sqs": requests(run, "sqs:") * p["sqs_request"],
        "secrets": requests(run, "secretsmanager:") / 1e4 * p["secret_10k_calls"],
    }


def add(total, part, times=1.0):
    for k, v in part.items():
        total[k] = total.get(k, 0.0) + v * times


def tenant_month(runs, users, records_per_user_day, changes_per_user_month, p):
    """One tenant's month: its runs on their schedules, and its audit volume."""
    bill = {}
    add(bill, invocation_cost(runs["license-check hourly run"], "license-check", p), MONTH["hourly"])
    add(bill, invocation_cost(runs["grace-period-notify daily run"], "grace-period-notify", p), MONTH["daily"])
    first, idle = runs["audit-fetch first run"], runs["audit-fetch run, nothing new"]
    add(bill, invocation_cost(idle, "audit-fetch", p), MONTH["quarter_hourly"])
    # The rest of the first run is its records' work: each record's archiving (its claim and confirmation, `rec`
    # items, and its object's intent), and each licence change's (its parts, pending marker and event). The
    # simulated feed is all licence changes; a real one is mostly sign-ins and other activity, so the two are priced
    # apart and weighted by the volumes assumed.
    archived = first["answer"].get("records_archived", 0) or 1
    changes = first["answer"].get("license_events", 0) or 1
    extra = {k: max(0.0, v - invocation_cost(idle, "audit-fetch", p)[k])
             for k, v in invocation_cost(first, "audit-fetch", p).items()}
    archive_kinds = ("rec", "objpending")
    ddb_archive = sum(units(first, f"dynamodb_wru:{k}") for k in archive_kinds) * p["dynamodb_wru"] + \
        sum(units(first, f"dynamodb_rru:{k}") for k in archive_kinds) * p["dynamodb_rru"]
    per_record = {"dynamodb": ddb_archive / archived, "s3": extra["s3"] / archived,
                  "lambda": extra["lambda"] / archived}
    per_change = {"dynamodb": max(0.0, extra["dynamodb"] - ddb_archive) / changes}
    records_month = users * records_per_user_day * 30.4
    changes_month = users * changes_per_user_month
    add(bill, per_record, records_month)
    add(bill, per_change, changes_month)
    bytes_per_record = units(first, "s3_bytes_put") / archived
    archive_gb_month = records_month * bytes_per_record / 1e9
    # Storage after a year of keeping everything (the point of the archive), and DynamoDB's index of 31 days.
    bill["s3_storage_year_one_end"] = 12 * archive_gb_month * p["s3_gb_month"]
    return bill, {"records_per_month": round(records_month), "licence_changes_per_month": round(changes_month),
                  "archive_gb_per_month": round(archive_gb_month, 3),
                  "bytes_per_record_archived": round(bytes_per_record)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--fleet-tenants", type=int, default=500)
    ap.add_argument("--fleet-users", type=int, default=1000)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--records-per-user-day", type=float, default=5.0)
    ap.add_argument("--licence-changes-per-user-month", type=float, default=0.3)
    ap.add_argument("--prices")
    a = ap.parse_args()
    p = dict(PRICES)
    if a.prices:
        p.update(json.load(open(a.prices)))
    port = free_port()
    python = ".venv/bin/python" if os.path.exists(".venv/bin/python") else sys.executable
    moto = subprocess.Popen([python, "scripts/moto/serve.py", str(port), "--count"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/_lw/counts")
        small, _ = measure(url, a.fleet_users, a.latency_ms, a.fleet_tenants)
        twice, big_doc = measure(url, 2 * a.fleet_users, a.latency_ms, a.fleet_tenants)
    finally:
        moto.kill()
        moto.wait()

    # moto keeps DynamoDB items in one Python list it scans per query, so a 10,000-user tenant's runs take it tens
    # of minutes: the large tenant's figures are measured at the fleet's size and twice it, and carried to its size
    # along that line.
    big = {name: scaled(small[name], twice[name], a.fleet_users, 2 * a.fleet_users, a.users) for name in small}
    single, single_volume = tenant_month(big, a.users, a.records_per_user_day, a.licence_changes_per_user_month, p)
    single["secrets"] = single.get("secrets", 0) + p["secret_month"]
    single["sqs_polling"] = 0.0  # one tenant: no fan-out queues are needed (they idle-poll anyway when deployed)
    per_tenant, fleet_volume = tenant_month(small, a.fleet_users, a.records_per_user_day, a.licence_changes_per_user_month, p)
    fleet = {k: v * a.fleet_tenants for k, v in per_tenant.items()}
    fan = big["schedule fan-out"]
    schedules = MONTH["hourly"] + MONTH["quarter_hourly"] + MONTH["daily"]
    add(fleet, {"sqs": requests(fan, "sqs:") * p["sqs_request"], "lambda": p["lambda_request"]}, schedules)
    # Each tenant message is received and deleted by the event source (2 requests) and is one more invocation.
    tenant_runs = a.fleet_tenants * schedules
    add(fleet, {"sqs": 2 * p["sqs_request"]}, tenant_runs)
    fleet["sqs_polling"] = 3 * POLL_REQUESTS_PER_QUEUE_MONTH * p["sqs_request"]
    fleet["secrets"] = fleet.get("secrets", 0) + p["secret_month"]

    def summary(bill):
        monthly = {k: round(v, 2) for k, v in sorted(bill.items())}
        running = sum(v for k, v in bill.items() if k != "s3_storage_year_one_end")
        return {"by_part_usd": monthly, "monthly_usd": round(running, 2),
                "monthly_usd_with_a_years_archive": round(running + bill["s3_storage_year_one_end"], 2)}

    measured = {name: {"wall_s": round(r["wall_s"], 2), "cpu_s": round(r["cpu_s"], 2),
                       "lambda_s": round(lambda_seconds(r, fn), 2),
                       "aws_requests": {k: round(v) for k, v in r["aws"]["requests"].items()},
                       "units": {k: round(v, 2) for k, v in r["aws"]["units"].items() if ":" not in k}}
                for name, r, fn in [(n, big[n], f) for n, f in [
                    ("license-check first run", "license-check"), ("license-check hourly run", "license-check"),
                    ("audit-fetch first run", "audit-fetch"), ("audit-fetch run, nothing new", "audit-fetch"),
                    ("grace-period-notify daily run", "grace-period-notify"),
                    ("schedule fan-out", "license-check")]]}
    result = {
        "assumptions": {"latency_ms": a.latency_ms, "records_per_user_day": a.records_per_user_day,
                        "licence_changes_per_user_month": a.licence_changes_per_user_month,
                        "schedules": "license-check hourly, audit-fetch every 15 minutes, grace-period-notify daily",
                        "memory_mb": MEMORY_MB, "prices": p,
                        "aws_latency_s": AWS_LATENCY_S,
                        "not_measured": "audit volume per user (assumed), AWS's latency (typical figures in place of "
                                        "moto's), SQS event-source polling (AWS's 5 receivers per queue), CloudWatch "
                                        "logs, metrics and alarms, data transfer"},
        "measured_users": [a.fleet_users, 2 * a.fleet_users],
        "runs_at_users": measured, "peak_rss_mib_of_the_measuring_process": round(big_doc["peak_rss_kib"] / 1024, 1),
        "tenant_10k": {**summary(single), **single_volume, "users": a.users},
        "fleet": {**summary(fleet), **fleet_volume, "tenants": a.fleet_tenants, "users_per_tenant": a.fleet_users,
                  "per_tenant_usd": round(sum(v for k, v in fleet.items() if k != "s3_storage_year_one_end")
                                          / a.fleet_tenants, 3)},
    }
    if a.json:
        print(json.dumps(result, indent=2))
        return
    print(f"runs of a {a.users:,}-user tenant (measured at {a.fleet_users:,} and {2 * a.fleet_users:,} users):")
    for name, m in measured.items():
        print(f"{name:32} wall (moto) {m['wall_s']:6.2f} s  cpu {m['cpu_s']:5.2f} s  on Lambda {m['lambda_s']:6.2f} s  "
              f"{sum(m['aws_requests'].values()):6} AWS requests  {m['units']}")
    for label, key in [(f"one {a.users:,}-user tenant", "tenant_10k"),
                       (f"{a.fleet_tenants} tenants x {a.fleet_users:,} users", "fleet")]:
        r = result[key]
        print(f"{label}: ${r['monthly_usd']}/month (with a year of archive: ${r['monthly_usd_with_a_years_archive']}) "
              f"{r['by_part_usd']}")


if __name__ == "__main__":
    main()

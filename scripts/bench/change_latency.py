#!/usr/bin/env python3
"""Benchmark (issue 18): detection latency of a mass delicensing through Graph change notifications, and the
notification endpoint's throughput.

Starts `licensewatch sim --users USERS` (LATENCY_MS on every Graph request) with its clock set to now, runs a first
full `licensewatch check` (the baseline), then `licensewatch serve` with change notifications on (it subscribes:
the simulator validates the endpoint). Each of TRIALS trials removes E3 from REMOVED users in one bulk change and
measures the time from the change (the control call returning) to the alert mail reaching the simulated tenant's
sendMail (polled every 10 ms). Between trials one usage-location change produces a re-check without removals, which
closes the occurrence (the policy judges each run alone: `mass_delicensing_window_minutes = 0`), so each trial is a
new alert. Reference: the hourly schedule (a scheduled run finds the same removal up to 3,600 s later) and the 5 s
target.

Then, with the worker still running, `webhook_load --mode notifications` posts valid batches of 100 notifications
for SECONDS from 32 connections: requests/s, notifications/s, p50/p99, and serve's RSS before and after.

Usage: scripts/bench/change_latency.py [USERS] [TRIALS] [REMOVED] [LATENCY_MS] [SECONDS]
(after `cargo build --release -p licensewatch --bins --examples`)
"""
import json, os, secrets, sqlite3, statistics, subprocess, sys, tempfile, time, urllib.request
from datetime import datetime, timezone

users = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
trials = int(sys.argv[2]) if len(sys.argv) > 2 else 20
removed = int(sys.argv[3]) if len(sys.argv) > 3 else 400
latency_ms = int(sys.argv[4]) if len(sys.argv) > 4 else 20
seconds = int(sys.argv[5]) if len(sys.argv) > 5 else 10
exe = "target/release/licensewatch"
load = "target/release/examples/webhook_load"
E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"


def post(url, body):
    req = urllib.request.Request(url, method="POST", headers={"content-type": "application/json"},
                                 data=json.dumps(body).encode())
    return urllib.request.urlopen(req).read()


def get(url):
    return json.load(urllib.request.urlopen(url))


def alert_mails(base):
    return sum(1 for m in get(f"{base}/_sim/mail") if "lost licences" in json.dumps(m))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_mass_alert(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT count(*) FROM alerts WHERE condition = 'mass_delicensing' AND open = 1").fetchone()[0]
    finally:
        con.close()


def wait(what, test, limit=60):
    started = time.perf_counter()
    while not test():
        if time.perf_counter() - started > limit:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.01)


sim = subprocess.Popen([exe, "sim", "--port", "0", "--users", str(users)], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
serve = None
try:
    info = json.loads(sim.stdout.readline())
    base = info["base_url"]
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    post(f"{base}/_sim/clock", {"set": now})
    if latency_ms:
        post(f"{base}/_sim/faults", {"route": "/v1.0/", "kind": "latency", "latency_ms": latency_ms})
    with tempfile.TemporaryDirectory() as tmp:
        with open(f"{tmp}/licensewatch.toml", "w") as f:
            f.write('[notify]\nadmins = ["it-team@contoso.com"]\nsender = "user000010@contoso.onmicrosoft.com"\n'
                    '[check]\nmass_delicensing_window_minutes = 0\n')
        sock = __import__("socket").socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        client_state = secrets.token_urlsafe(36)
        env = dict(os.environ, LICENSEWATCH_TENANT_ID=info["tenant_id"],
                   LICENSEWATCH_CLIENT_ID="66666666-7777-8888-9999-000000000000",
                   LICENSEWATCH_CLIENT_SECRET="bench", LICENSEWATCH_GRAPH_URL=base,
                   LICENSEWATCH_LOGIN_URL=base, LICENSEWATCH_MANAGE_URL=base,
                   LICENSEWATCH_STATE=f"sqlite:{tmp}/lw.db", LICENSEWATCH_CONFIG=f"{tmp}/licensewatch.toml",
                   LICENSEWATCH_NOTIFICATION_URL=f"http://127.0.0.1:{port}/graph/notifications",
                   LICENSEWATCH_NOTIFICATION_CLIENT_STATE=client_state, RUST_LOG="warn")
        t = time.perf_counter()
        first = subprocess.run([exe, "check", "--json"], env=env, capture_output=True)
        if first.returncode != 0:
            sys.exit(first.stderr.decode()[:2000])
        baseline_s = time.perf_counter() - t
        serve = subprocess.Popen([exe, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        wait("the subscription", lambda: get(f"{base}/_sim/notifications")["subscriptions"])
        rss_start = rss_kib(serve.pid)
        latencies = []
        for k in range(trials):
            before = alert_mails(base)
            t0 = time.perf_counter()
            out = json.loads(post(f"{base}/_sim/licenses/remove", {"sku_id": E3, "count": removed}))
            t1 = time.perf_counter()
            if out["removed"] != removed:
                sys.exit(f"only {out['removed']} users held E3")
            wait("the alert", lambda: alert_mails(base) > before)
            latencies.append(time.perf_counter() - t1)
            # A change without removals: its re-check ends the occurrence, so the next trial is a new alert.
            i = (k * 7 + 11) % users
            who = f"{i:08x}-0000-4000-8000-{i:012x}"
            post(f"{base}/_sim/users/{who}/usage-location", {"usage_location": "DE" if k % 2 else "FR"})
            wait("the occurrence to end", lambda: open_mass_alert(f"{tmp}/lw.db") == 0)
        rss_trials = rss_kib(serve.pid)
        stats = get(f"{base}/_sim/notifications")["stats"]
        latencies.sort()
        p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
        result = {"users": users, "removed_per_trial": removed, "trials": trials, "graph_latency_ms": latency_ms,
                  "baseline_full_check_s": round(baseline_s, 2),
                  "alert_after_change_s": {"min": round(latencies[0], 3), "median": round(statistics.median(latencies), 3),
                                           "p99": round(p(0.99), 3), "max": round(latencies[-1], 3)},
                  "reference": {"target_p99_s": 5, "hourly_schedule_worst_s": 3600},
                  "notifications": {k: stats[k] for k in ("notifications_delivered", "batches_delivered",
                                                          "attempts_failed", "slowest_ack_ms")},
                  "serve_rss_mib": {"start": round(rss_start / 1024, 1), "after_trials": round(rss_trials / 1024, 1)}}
        if seconds > 0 and os.path.exists(load):
            burst = subprocess.run([load, "--url", f"http://127.0.0.1:{port}", "--mode", "notifications",
                                    "--client-state", client_state, "--tenant", info["tenant_id"],
                                    "--seconds", str(seconds), "--concurrency", "32", "--batch", "100"],
                                   capture_output=True, text=True)
            r = json.loads(burst.stdout)
            result["endpoint"] = {"requests_per_s": r["requests_per_s"],
                                  "notifications_per_s": r["requests_per_s"] * 100, "p50_ms": r["p50_ms"],
                                  "p99_ms": r["p99_ms"], "statuses": r["statuses"],
                                  "serve_rss_mib_after": round(rss_kib(serve.pid) / 1024, 1)}
        print(json.dumps(result))
finally:
    if serve:
        serve.kill()
    sim.kill()

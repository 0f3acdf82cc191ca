#!/usr/bin/env python3
"""Benchmark (issue 38, not a test): does `licensewatch serve`'s memory settle? Fills a state database past SQLite's
16 MiB page cache, restarts serve on it, then sends RATE signed remediation requests a second for MINUTES and records
serve's RSS (and the database's size) every 10 s. Prints one JSON line a sample, then a summary: RSS at start, at its
peak, and its spread over the last third of the run (settled when that spread stays within 1 MiB while the
database keeps growing).

Usage: scripts/bench/serve_soak.py [MINUTES] [RATE] [FILL_MIB]
(after `cargo build --release -p licensewatch --examples`)
"""
import base64, hashlib, hmac, http.client, json, os, subprocess, sys, tempfile, threading, time

minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 15.0
rate = float(sys.argv[2]) if len(sys.argv) > 2 else 40.0
fill_mib = float(sys.argv[3]) if len(sys.argv) > 3 else 24.0
secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
key = base64.b64decode(secret[len("whsec_"):])


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return round(next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024, 1)


def db_mib(db):
    return round(sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p)) / 2**20, 1)


def start_serve(env):
    serve = subprocess.Popen(["target/release/licensewatch", "serve", "--port", "0", "--no-worker"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return serve, json.loads(serve.stdout.readline())["base_url"]


def signed_request(conn, n):
    body = json.dumps({"user": f"user{n % 100_000:06}@contoso.onmicrosoft.com", "action": "reprocess",
                       "ticket": {"system": "soak", "id": f"S-{n}"}}).encode()
    msg_id, ts = f"msg_soak_{n}", str(int(time.time()))
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    conn.request("POST", "/remediations", body=body, headers={
        "content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": ts,
        "webhook-signature": f"v1,{sig}"})
    response = conn.getresponse()
    response.read()
    return response.status


def paced_load(url, stop, statuses):
    """RATE requests a second, on schedule (not as fast as possible), over one keep-alive connection."""
    host = url.split("//", 1)[1]
    conn = http.client.HTTPConnection(host, timeout=10)
    n, t0 = 0, time.monotonic()
    while not stop.is_set():
        due = t0 + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            status = signed_request(conn, 10_000_000 + n)
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(host, timeout=10)
            status = 0
        statuses[status] = statuses.get(status, 0) + 1
        n += 1


with tempfile.TemporaryDirectory() as tmp:
    policy, db = f"{tmp}/licensewatch.toml", f"{tmp}/lw.db"
    with open(policy, "w") as f:
        f.write('[webhook]\nsecrets_env = ["LW_WEBHOOK_SECRET"]\n[remediation]\nmax_actions_per_hour = 1000000000\n')
    env = dict(os.environ, LICENSEWATCH_TENANT_ID="48a80680-7326-48cd-9935-b556b81d3a4e",
               LICENSEWATCH_CLIENT_ID="66666666-7777-8888-9999-000000000000", LICENSEWATCH_CLIENT_SECRET="bench",
               LICENSEWATCH_GRAPH_URL="http://127.0.0.1:9", LICENSEWATCH_LOGIN_URL="http://127.0.0.1:9",
               LICENSEWATCH_STATE=f"sqlite:{db}", LICENSEWATCH_CONFIG=policy, LW_WEBHOOK_SECRET=secret)

    # 1. A database past the page cache: bursts of requests as fast as serve takes them.
    serve, url = start_serve(env)
    while db_mib(db) < fill_mib:
        subprocess.run(["target/release/examples/webhook_load", "--url", url, "--secret", secret, "--mode", "valid",
                        "--seconds", "10", "--concurrency", "16"], capture_output=True, check=True)
    serve.terminate()
    serve.wait()
    print(json.dumps({"filled_db_mib": db_mib(db)}), flush=True)

    # 2. A fresh serve on it, at a steady RATE, sampled every 10 s.
    serve, url = start_serve(env)
    stop, statuses, samples = threading.Event(), {}, []
    load = threading.Thread(target=paced_load, args=(url, stop, statuses))
    try:
        time.sleep(1)
        start = time.monotonic()
        load.start()
        while True:
            sample = {"t_s": round(time.monotonic() - start), "rss_mib": rss_mib(serve.pid), "db_mib": db_mib(db)}
            samples.append(sample)
            print(json.dumps(sample), flush=True)
            if time.monotonic() - start >= minutes * 60:
                break
            time.sleep(10)
    finally:
        stop.set()
        load.join()
        with open(f"/proc/{serve.pid}/status") as f:
            hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
        serve.kill()
    last = samples[len(samples) * 2 // 3:]
    spread = round(max(s["rss_mib"] for s in last) - min(s["rss_mib"] for s in last), 1)
    print(json.dumps({"minutes": minutes, "rate_per_s": rate, "requests": statuses,
                      "rss_start_mib": samples[0]["rss_mib"], "rss_peak_mib": round(hwm / 1024, 1),
                      "rss_end_mib": samples[-1]["rss_mib"], "last_third_spread_mib": spread,
                      "db_start_mib": samples[0]["db_mib"], "db_end_mib": samples[-1]["db_mib"],
                      "settled": spread <= 1.0}))

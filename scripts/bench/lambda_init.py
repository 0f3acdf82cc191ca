#!/usr/bin/env python3
"""Init time of each Lambda binary, measured locally: process start until the runtime's first
`GET /runtime/invocation/next` to a fake Runtime API on 127.0.0.1 (so no network and no AWS are involved).

Configuration is what the AWS template gives the functions (DynamoDB state, an S3 archive, queues for the functions
that queue), with the client secret in the environment and AWS credentials as Lambda provides them: nothing at
start-up calls AWS, so what is measured is the binary's own start-up (runtime, configuration, clients, stores), not
Secrets Manager latency. The functions link no SQLite.

usage: scripts/bench/lambda_init.py DIR [RUNS]
  DIR holds the four binaries built for this machine with the Lambda profile:
  cargo build --profile lambda --target x86_64-unknown-linux-gnu -p license-check -p grace-period-notify \
      -p audit-fetch -p reprocess-user   (then DIR = target/x86_64-unknown-linux-gnu/lambda)
  The reference row (the floor) is DIR/examples/empty_function, a function that only starts the runtime:
  cargo build --profile lambda --target x86_64-unknown-linux-gnu -p licensewatch-lambda --example empty_function
"""
import http.server
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

FUNCTIONS = ["license-check", "grace-period-notify", "audit-fetch", "reprocess-user"]


class Api(http.server.BaseHTTPRequestHandler):
    ready = threading.Event()

    def do_GET(self):
        if "/runtime/invocation/next" in self.path:
            Api.ready.set()
            time.sleep(0.2)  # hold the poll; the process is killed right after
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    root = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
            "AWS_LAMBDA_FUNCTION_NAME": "bench",
            "AWS_LAMBDA_FUNCTION_VERSION": "1",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": "bench",
            "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
            "LICENSEWATCH_TENANT_ID": "48a80680-7326-48cd-9935-b556b81d3a4e",
            "LICENSEWATCH_CLIENT_ID": "0f0f0f0f-1111-2222-3333-444455556666",
            "LICENSEWATCH_CLIENT_SECRET": "bench-secret",
            "LICENSEWATCH_STATE": "dynamodb:licensewatch-bench",
            "LICENSEWATCH_ARCHIVE": "s3://licensewatch-bench/archive",
            "LICENSEWATCH_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/remediations",
            "LICENSEWATCH_TENANT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/tenants",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "AKIDBENCH",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_SESSION_TOKEN": "bench",
            "HOME": tmp,
            "LICENSEWATCH_POLICY_TOML": '[webhook]\nsecrets_env = ["LICENSEWATCH_WEBHOOK_SECRET"]\n',
            "LICENSEWATCH_WEBHOOK_SECRET": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "RUST_LOG": "error",
        }
        # LAMBDA_LIKE_TRUST_STORE=1: read the root certificates from one bundle file, as on Lambda's Amazon Linux
        # 2023 (/etc/pki/tls/certs/ca-bundle.crt), instead of this machine's directory of ~150 certificate files.
        if os.environ.get("LAMBDA_LIKE_TRUST_STORE") == "1":
            env["SSL_CERT_FILE"] = "/etc/ssl/certs/ca-certificates.crt"
            env["SSL_CERT_DIR"] = tmp
        print(f"{'function':<22} {'size':>9} {'median':>8} {'p95':>8}  ({runs} runs)")
        if os.environ.get("PROFILE_WITH_STRACE"):
            profile(os.path.join(root, os.environ["PROFILE_WITH_STRACE"]), env, tmp)
            return
        reference = os.path.join(root, "examples", "empty_function")
        rows = [(f, os.path.join(root, f)) for f in FUNCTIONS]
        if os.path.exists(reference):
            rows.insert(0, ("(empty function)", reference))
        for f, path in rows:
            times = []
            for _ in range(runs):
                Api.ready.clear()
                t0 = time.perf_counter()
                p = subprocess.Popen([path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                if not Api.ready.wait(10):
                    p.kill()
                    sys.exit(f"{f} never polled for an invocation: {p.stderr.read().decode()[:500]}")
                times.append((time.perf_counter() - t0) * 1000)
                p.kill()
                p.wait()
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            size = os.path.getsize(path) / 1e6
            print(f"{f:<22} {size:>7.1f}MB {statistics.median(times):>6.1f}ms {p95:>6.1f}ms")
    server.shutdown()


def profile(path, env, tmp):
    """PROFILE_WITH_STRACE=<function>: one start under `strace -f -tt`, summarised: when each root-certificate
    read starts, how many files it opens, and when the runtime first polls for an invocation."""
    out = os.path.join(tmp, "strace.out")
    Api.ready.clear()
    p = subprocess.Popen(["strace", "-f", "-tt", "-e", "trace=execve,openat,connect", "-o", out, path],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    Api.ready.wait(10)
    time.sleep(0.2)
    p.kill()
    p.wait()
    def t(line):
        h, m, sec = line.split()[1].split(":")
        return (int(h) * 3600 + int(m) * 60 + float(sec)) * 1000
    lines = [l for l in open(out) if "ENOENT" not in l]
    start = t(lines[0])
    reads = [t(l) - start for l in lines if "ca-certificates.crt" in l or "ca-bundle.crt" in l]
    files = sum(1 for l in lines if "/etc/ssl/certs/" in l)
    for l in lines:
        if "connect(" in l and "AF_INET" in l:
            print(f"first connect (the runtime's poll) at {t(l) - start:.1f} ms after execve (under strace)")
            break
    print(f"root-certificate reads starting at (ms): {[round(r, 1) for r in reads]}; certificate files opened: {files}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Init time of each Lambda binary, measured locally: process start until the runtime's first
`GET /runtime/invocation/next` to a fake Runtime API on 127.0.0.1 (so no network and no AWS are involved).

Configuration is local (client secret in the environment, SQLite state, directory archive): what is measured is
the binary's own start-up (runtime, configuration, clients, store), not Secrets Manager or DynamoDB latency.

usage: scripts/bench/lambda_init.py DIR [RUNS]    (DIR holds the binaries, e.g. target/release)
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
            "LICENSEWATCH_STATE": f"sqlite:{tmp}/state.db",
            "LICENSEWATCH_ARCHIVE": f"file:{tmp}/archive",
            "LICENSEWATCH_POLICY_TOML": '[webhook]\nsecrets_env = ["LICENSEWATCH_WEBHOOK_SECRET"]\n',
            "LICENSEWATCH_WEBHOOK_SECRET": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "RUST_LOG": "error",
        }
        print(f"{'function':<22} {'size':>9} {'median':>8} {'p95':>8}  ({runs} runs)")
        for f in FUNCTIONS:
            path = os.path.join(root, f)
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


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A small stand-in for the Office 365 Management Activity API, in plain Python, for the audit-fetch benchmark
(issue 16): the token endpoint, subscriptions/list and /start, subscriptions/content for a window, and the content
blobs, plus an empty Graph directory-audit page. RECORDS records of about 450 bytes in BLOBS blobs, 1 % of each
blob repeating records of the blob before (Microsoft repeats records across blobs). Blob bodies are built once, so
serving is a copy.

Usage: scripts/bench/audit_feed.py RECORDS BLOBS NOW   (prints {"base_url": ..., "tenant_id": ...} on one line)
"""
import json, sys, threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

TENANT = "8f0e5b0e-1c3a-4b57-9d2e-6a7b8c9d0e1f"
CONTENT_TYPE = "Audit.AzureActiveDirectory"


def make_blobs(records, blobs, now):
    per = records // blobs
    out = []
    created_of = lambda k: now - timedelta(minutes=(blobs - k) % (6 * 24 * 60) + 10)
    for k in range(blobs):
        recs = []
        for i in range(per):
            # Every hundredth record repeats one of the blob before, as Microsoft repeats records.
            src, j = (k - 1, i - 1) if (i % 100 == 99 and k > 0) else (k, i)
            when = (created_of(src) - timedelta(minutes=70)).strftime("%Y-%m-%dT%H:%M:%S")
            recs.append({"CreationTime": when, "Id": f"{src:08x}-b0b0-4b0b-8b0b-{j:012x}", "Operation": "UserLoggedIn",
                         "OrganizationId": TENANT, "RecordType": 15, "ResultStatus": "Success",
                         "UserKey": f"user{j}@{TENANT}", "UserType": 0, "Workload": "AzureActiveDirectory",
                         "ObjectId": "00000002-0000-0ff1-ce00-000000000000", "UserId": f"user{j % 1000}@contoso.com",
                         "AzureActiveDirectoryEventType": 0, "ExtendedProperties": [], "ModifiedProperties": []})
        created = created_of(k)
        out.append((f"bench${k:08}", created, json.dumps(recs, separators=(",", ":")).encode()))
    return out


def main():
    records, blobs = int(sys.argv[1]), int(sys.argv[2])
    now = datetime.fromisoformat(sys.argv[3].replace("Z", "+00:00"))
    made = make_blobs(records, blobs, now)
    by_id = {cid: body for cid, _, body in made}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send(self, status, body, ctype="application/json"):
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            if self.path.endswith("/oauth2/v2.0/token"):
                self.send(200, json.dumps({"token_type": "Bearer", "expires_in": 3600, "access_token": "bench"}).encode())
            elif "/subscriptions/start" in self.path:
                self.send(200, json.dumps({"contentType": CONTENT_TYPE, "status": "enabled"}).encode())
            else:
                self.send(404, b"{}")

        def do_GET(self):
            url = urlparse(self.path)
            q = parse_qs(url.query)
            if url.path.startswith("/v1.0/auditLogs/directoryAudits"):
                self.send(200, b'{"value":[]}')
            elif url.path.endswith("/subscriptions/list"):
                self.send(200, json.dumps([{"contentType": CONTENT_TYPE, "status": "enabled", "webhook": None}]).encode())
            elif url.path.endswith("/subscriptions/content"):
                start = datetime.fromisoformat(q["startTime"][0]).replace(tzinfo=timezone.utc)
                end = datetime.fromisoformat(q["endTime"][0]).replace(tzinfo=timezone.utc)
                listing = [{"contentType": CONTENT_TYPE, "contentId": cid,
                            "contentUri": f"{base}/api/v1.0/{TENANT}/activity/feed/audit/{cid}",
                            "contentCreated": created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                            "contentExpiration": (created + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
                           for cid, created, _ in made if start <= created < end]
                self.send(200, json.dumps(listing).encode())
            elif "/activity/feed/audit/" in url.path:
                body = by_id.get(url.path.rsplit("/", 1)[1])
                self.send(200, body) if body is not None else self.send(404, b"{}")
            else:
                self.send(404, b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    base = f"http://127.0.0.1:{server.server_address[1]}"
    print(json.dumps({"base_url": base, "tenant_id": TENANT, "blobs": len(made)}), flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()

"""moto in server mode, one request at a time.

moto's own `moto_server` answers requests on parallel threads, and its DynamoDB checks a transaction's conditions
and applies its writes without a lock, so two concurrent transactions can both pass: real DynamoDB never allows
that. Serving requests one by one gives the tests DynamoDB's atomicity while our clients still race each other
(their reads, transactions and retries interleave freely).

With `--count`, every request is also tallied by service and operation, with what AWS bills for it: DynamoDB
read and write request units (on-demand: a write unit per KiB of each item written, a strongly consistent read unit
per 4 KiB read), S3 bytes written, SQS and Secrets Manager requests, and the time moto itself spent answering. `GET /_lw/counts` returns the tallies as JSON,
`DELETE /_lw/counts` resets them (the cost benchmark, scripts/bench/cost.py, reads them around each invocation).

usage: python serve.py PORT [--count]
"""
import io
import json
import math
import os
import sys
import threading
import time
from collections import defaultdict
from urllib.parse import parse_qs

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

port = int(sys.argv[1])
counting = "--count" in sys.argv[2:]
os.environ.setdefault("MOTO_PORT", str(port))


class Tally:
    """Requests per `service:Operation`, and the billed units."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.requests = defaultdict(int)
        self.units = defaultdict(float)

    def add(self, op, units):
        with self.lock:
            self.requests[op] += 1
            for k, v in units.items():
                self.units[k] += v

    def snapshot(self):
        with self.lock:
            return {"requests": dict(self.requests), "units": dict(self.units)}


def kib(n, size):
    return max(1, math.ceil(n / size))


def dynamo_units(op, body, answer):
    """Request units of one DynamoDB call, from the items it wrote or the bytes it read."""
    try:
        req = json.loads(body or b"{}")
    except ValueError:
        req = {}
    if op in ("PutItem", "DeleteItem", "UpdateItem"):
        return {"dynamodb_wru": kib(len(json.dumps(req.get("Item", req.get("Key", {})))), 1024)}
    if op == "BatchWriteItem":
        items = [w for ws in req.get("RequestItems", {}).values() for w in ws]
        return {"dynamodb_wru": sum(kib(len(json.dumps(w)), 1024) for w in items)}
    if op == "TransactWriteItems":
        # Transactions cost two units per KiB.
        return {"dynamodb_wru": sum(2 * kib(len(json.dumps(t)), 1024) for t in req.get("TransactItems", []))}
    if op in ("GetItem", "Query", "Scan"):
        return {"dynamodb_rru": kib(len(answer), 4096)}
    if op == "BatchGetItem":
        try:
            found = json.loads(answer or b"{}").get("Responses", {})
        except ValueError:
            found = {}
        items = [i for its in found.values() for i in its]
        return {"dynamodb_rru": max(1, sum(kib(len(json.dumps(i)), 4096) for i in items))}
    return {}


def classify(environ, body):
    """`service:Operation` of a request."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        service, _, op = target.partition(".")
        service = {"DynamoDB_20120810": "dynamodb", "AmazonSQS": "sqs"}.get(service, service.lower())
        return service, op
    form = parse_qs(body.decode("utf-8", "replace")) if body else {}
    if "Action" in form:
        return "sqs", form["Action"][0]
    method = environ.get("REQUEST_METHOD", "GET")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if method == "GET" and ("list-type" in query or environ.get("PATH_INFO", "/").count("/") <= 1):
        return "s3", "LIST"
    return "s3", method


class Counting:
    """WSGI middleware that tallies every request it passes on."""

    def __init__(self, app):
        self.app = app
        self.tally = Tally()

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/_lw/counts":
            if environ.get("REQUEST_METHOD") == "DELETE":
                with self.tally.lock:
                    self.tally.reset()
            payload = json.dumps(self.tally.snapshot()).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [payload]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        service, op = classify(environ, body)
        started = time.perf_counter()
        answer = b"".join(self.app(environ, start_response))
        busy = time.perf_counter() - started
        units = {}
        if service == "dynamodb":
            units = dynamo_units(op, body, answer)
        elif service == "s3" and op == "PUT":
            units = {"s3_bytes_put": len(body)}
        # moto's own time serving it: the cost benchmark puts AWS's typical latency in its place.
        units["moto_busy_s"] = busy
        units[f"moto_busy_s:{service}:{op}"] = busy
        self.tally.add(f"{service}:{op}", units)
        return [answer]


app = DomainDispatcherApplication(create_backend_app)
if counting:
    app = Counting(app)
run_simple("127.0.0.1", port, app, threaded=False, request_handler=MotoRequestHandler)

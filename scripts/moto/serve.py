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


def kind_of(item):
    """What an item is, from its partition key `{tenant}#{kind}...`: `rec` (archive claims), `lpart`, `case`..."""
    pk = (item or {}).get("pk", {}).get("S", "")
    parts = pk.split("#")
    return parts[1] if len(parts) > 1 else "other"


def per_kind(unit, pairs):
    """Units in total and by item kind."""
    out = {}
    for kind, n in pairs:
        out[unit] = out.get(unit, 0) + n
        out[f"{unit}:{kind}"] = out.get(f"{unit}:{kind}", 0) + n
    return out


def dynamo_units(op, body, answer):
    """Request units of one DynamoDB call, from the items it wrote or the bytes it read, in total and by the kind
    of item (the cost model tells an archived record's units from a licence change's)."""
    try:
        req = json.loads(body or b"{}")
    except ValueError:
        req = {}
    if op in ("PutItem", "DeleteItem", "UpdateItem"):
        item = req.get("Item", req.get("Key", {}))
        return per_kind("dynamodb_wru", [(kind_of(item), kib(len(json.dumps(item)), 1024))])
    if op == "BatchWriteItem":
        writes = [w for ws in req.get("RequestItems", {}).values() for w in ws]
        items = [w.get("PutRequest", {}).get("Item") or w.get("DeleteRequest", {}).get("Key", {}) for w in writes]
        return per_kind("dynamodb_wru", [(kind_of(i), kib(len(json.dumps(i)), 1024)) for i in items])
    if op == "TransactWriteItems":
        # Transactions cost two units per KiB.
        pairs = []
        for t in req.get("TransactItems", []):
            body = next(iter(t.values()), {})
            item = body.get("Item", body.get("Key", {}))
            pairs.append((kind_of(item), 2 * kib(len(json.dumps(t)), 1024)))
        return per_kind("dynamodb_wru", pairs)
    if op == "GetItem":
        return per_kind("dynamodb_rru", [(kind_of(req.get("Key")), kib(len(answer), 4096))])
    if op in ("Query", "Scan"):
        pk = req.get("ExpressionAttributeValues", {}).get(":pk", {})
        return per_kind("dynamodb_rru", [(kind_of({"pk": pk}), kib(len(answer), 4096))])
    if op == "BatchGetItem":
        keys = [k for ks in req.get("RequestItems", {}).values() for k in ks.get("Keys", [])]
        try:
            found = json.loads(answer or b"{}").get("Responses", {})
        except ValueError:
            found = {}
        items = [i for its in found.values() for i in its]
        # Strongly consistent: a unit per item read (up to 4 KiB), and one for a call that found nothing.
        pairs = [(kind_of(i), kib(len(json.dumps(i)), 4096)) for i in items]
        return per_kind("dynamodb_rru", pairs or [(kind_of(keys[0] if keys else {}), 1)])
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

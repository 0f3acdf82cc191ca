"""moto in server mode, one request at a time.

moto's own `moto_server` answers requests on parallel threads, and its DynamoDB checks a transaction's conditions
and applies its writes without a lock, so two concurrent transactions can both pass: real DynamoDB never allows
that. Serving requests one by one gives the tests DynamoDB's atomicity while our clients still race each other
(their reads, transactions and retries interleave freely).

usage: python serve.py PORT
"""
import os
import sys

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

port = int(sys.argv[1])
os.environ.setdefault("MOTO_PORT", str(port))
app = DomainDispatcherApplication(create_backend_app)
run_simple("127.0.0.1", port, app, threaded=False, request_handler=MotoRequestHandler)

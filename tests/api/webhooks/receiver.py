"""A webhook receiver for tests/api/webhooks: verifies each delivery with
the `standardwebhooks` package (an implementation of the spec independent of
the bridge's), answers the statuses given (then 200), and prints one JSON
line per delivery. Usage: receiver.py HOST SECRET_FILE [STATUS,STATUS,...].
The first line printed is {"port": N}; the secret is read from SECRET_FILE
at each delivery (the test writes it once the hook is made)."""

import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook

HOST, SECRET_FILE = sys.argv[1], sys.argv[2]
ANSWERS = [int(s) for s in sys.argv[3].split(",")] if len(sys.argv) > 3 and sys.argv[3] else []


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            with open(SECRET_FILE) as f:
                Webhook(f.read().strip()).verify(body, headers)
            verified, error = True, None
        except Exception as e:  # any failure is the test's finding
            verified, error = False, f"{type(e).__name__}: {e}"
        status = ANSWERS.pop(0) if ANSWERS else 200
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()
        line = {"id": headers.get("webhook-id"), "verified": verified, "error": error, "answered": status,
                "traceparent": headers.get("traceparent"), "body": json.loads(body)}
        print(json.dumps(line), flush=True)

    def log_message(self, *args):
        pass


class Server(HTTPServer):
    address_family = socket.AF_INET6 if ":" in HOST else socket.AF_INET


server = Server((HOST, 0), Handler)
print(json.dumps({"port": server.server_address[1]}), flush=True)
server.serve_forever()

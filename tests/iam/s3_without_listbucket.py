#!/usr/bin/env python3
"""An S3 endpoint that answers as S3 does to a role WITHOUT s3:ListBucket: a proxy in front of
moto that turns a missing key's 404 (HEAD or GET) into 403 AccessDenied and refuses listings
with 403. moto does not do this by itself (even with its IAM enforcement on it answers 404 for a
missing key), so without this no local test would meet AWS's answer to a deleted object.

Usage: s3_without_listbucket.py UPSTREAM_URL PORT_FILE
  Listens on a free port, writes it to PORT_FILE, and prints one line per rewritten answer
  ("403 HEAD /bucket/key"). Stop with SIGTERM.
"""
import http.client
import http.server
import signal
import sys
import urllib.parse

UPSTREAM = urllib.parse.urlsplit(sys.argv[1])
DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def deny(self, why):
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(DENIED)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(DENIED)
        print(f"403 {self.command} {self.path.split('?')[0]} ({why})", flush=True)

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        path, _, query = self.path.partition("?")
        params = urllib.parse.parse_qs(query)
        # path-style: /bucket (a listing) or /bucket/key (an object)
        is_listing = self.command == "GET" and path.strip("/").count("/") == 0 and (
            "list-type" in params or "prefix" in params
        )
        if is_listing:
            return self.deny("no s3:ListBucket")
        upstream = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        headers["Host"] = UPSTREAM.netloc
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        if answer.status == 404 and self.command in ("GET", "HEAD") and path.strip("/").count("/") >= 1:
            return self.deny("missing key, and the caller may not list")
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", answer.getheader("Content-Length", str(len(data))) if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = forward


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
with open(sys.argv[2], "w") as f:
    f.write(str(server.server_address[1]))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
server.serve_forever()

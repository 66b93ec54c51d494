#!/usr/bin/env python3
"""A stand-in for the Hugging Face hub's file endpoint, for tests of scripts/download-model.sh.

Serves ROOT/<owner>/<name>/<path> at /<owner>/<name>/resolve/<revision>/<path>, where <revision> must
equal the contents of ROOT/<owner>/<name>/.revision (another revision is a 404, as on the hub). Honours
`Range: bytes=N-` (206, or 416 past the end) like the hub's CDN. `--cut PATH=BYTES` makes the first
full request for PATH stop after BYTES bytes and drop the connection, as a flaky network does. Every
request is appended to --log as `<path> <range or ->`. Prints the port it listens on, then serves.
"""
import argparse
import http.server
import os
import socketserver


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--log", required=True)
    ap.add_argument("--cut", action="append", default=[], help="PATH=BYTES")
    a = ap.parse_args()
    cuts = {p: int(n) for p, n in (c.rsplit("=", 1) for c in a.cut)}

    class Hub(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            parts = self.path.split("/", 5)
            if len(parts) < 6 or parts[3] != "resolve":
                return self.send_error(404)
            owner, name, revision, path = parts[1], parts[2], parts[4], parts[5]
            requested = self.headers.get("Range", "-")
            with open(a.log, "a") as log:
                log.write(f"{path} {requested}\n")
            repo = os.path.join(a.root, owner, name)
            try:
                with open(os.path.join(repo, ".revision")) as f:
                    pinned = f.read().strip()
            except OSError:
                return self.send_error(404, "no such repo")
            file = os.path.join(repo, path)
            if revision != pinned or not os.path.isfile(file):
                return self.send_error(404, "Entry not found")
            with open(file, "rb") as f:
                body = f.read()
            start = 0
            if requested.startswith("bytes="):
                start = int(requested[6:].split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if start == 0 and path in cuts:
                self.wfile.write(body[: cuts.pop(path)])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body[start:])

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Hub)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

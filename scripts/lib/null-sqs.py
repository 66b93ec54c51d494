#!/usr/bin/env python3
"""An SQS stand-in that takes every message and keeps none: for benchmarking a sender without
moto's own cost (moto's queue slows as it fills). Speaks the JSON protocol both the Rust SDK and
boto3 use (X-Amz-Target: AmazonSQS.<Operation>), answering SendMessageBatch, SendMessage,
GetQueueUrl, CreateQueue and GetQueueAttributes; counts the messages it took and prints the
count on SIGTERM.

    null-sqs.py PORT
"""
import hashlib
import json
import signal
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

taken = 0
lock = threading.Lock()


def answer(target, body, port):
    global taken
    op = target.rsplit(".", 1)[-1]
    if op == "SendMessageBatch":
        entries = body["Entries"]
        with lock:
            taken += len(entries)
        return {"Successful": [{"Id": e["Id"], "MessageId": str(uuid.uuid4()),
                                "MD5OfMessageBody": hashlib.md5(e["MessageBody"].encode()).hexdigest()}
                               for e in entries], "Failed": []}
    if op == "SendMessage":
        with lock:
            taken += 1
        return {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": hashlib.md5(body["MessageBody"].encode()).hexdigest()}
    if op in ("GetQueueUrl", "CreateQueue"):
        return {"QueueUrl": f"http://127.0.0.1:{port}/123456789012/{body['QueueName']}"}
    if op == "GetQueueAttributes":
        return {"Attributes": {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}}
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        reply = answer(self.headers.get("X-Amz-Target", ""), body, self.server.server_address[1])
        data = json.dumps(reply if reply is not None else {"__type": "UnsupportedOperation"}).encode()
        self.send_response(200 if reply is not None else 400)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)

    def stop(*_):
        print(taken, flush=True)
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()

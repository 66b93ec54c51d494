#!/usr/bin/env python3
"""A server that accepts TCP connections and never answers: the Milvus that hangs (a stuck
proxy, a half-open connection, a server under a GC pause). scripts/test.sh points a second
Lambda emulator's MILVUS_URI at it, to show every remote call ends before the deadline.

Usage: silent-server.py PORT   (stop with SIGTERM)
"""
import signal
import socket
import sys

port = int(sys.argv[1])
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(128)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
held = []  # kept open, never read from or written to
while True:
    connection, _ = server.accept()
    held.append(connection)

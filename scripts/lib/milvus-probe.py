#!/usr/bin/env python3
"""Waits until a Milvus really serves: creates a small collection, inserts a row, searches for it
and drops the collection, retrying until the deadline. Used by `scripts/milvus.sh up`, because
/healthz answers OK while the engine still waits for the last run's sessions (its first
create_collection then takes as long as their leases have left). Standard library only (the
Milvus REST API v1 on the gRPC port), so it runs before anything is built.

    milvus-probe.py URI TIMEOUT_SECS     exit 0 once a round trip succeeds, 1 at the deadline
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request


def call(uri, path, body, timeout):
    request = urllib.request.Request(
        f"{uri}/v1/vector/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        reply = json.load(answer)
    if reply.get("code") != 200:
        raise RuntimeError(f"{path}: {reply}")
    return reply.get("data")


def round_trip(uri, name, timeout):
    call(uri, "collections/create", {"collectionName": name, "dimension": 2}, timeout)
    try:
        call(uri, "insert", {"collectionName": name, "data": [{"vector": [0.6, 0.8]}]}, timeout)
        hits = call(uri, "search", {"collectionName": name, "vector": [0.6, 0.8], "limit": 1}, timeout)
        if not hits:
            raise RuntimeError("the inserted row was not found")
    finally:
        call(uri, "collections/drop", {"collectionName": name}, timeout)


def main():
    uri, limit = sys.argv[1].rstrip("/"), float(sys.argv[2])
    deadline = time.monotonic() + limit
    name = f"clipsearch_ready_probe_{os.getpid()}"
    last = None
    while time.monotonic() < deadline:
        left = max(1.0, deadline - time.monotonic())
        try:
            round_trip(uri, name, left)
            return 0
        except (OSError, RuntimeError, ValueError, urllib.error.URLError) as error:
            last = error
            time.sleep(0.5)
    print(f"milvus-probe: no create/insert/search round trip within {limit:.0f} s: {last}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

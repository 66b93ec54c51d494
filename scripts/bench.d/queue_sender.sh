# The backfill sender alone (issue 15): `clipsearch index s3://bucket/prefix --via-queue QUEUE
# --no-wait` lists BENCH_SENDER_OBJECTS keys (default 10000; empty objects: only the listing and
# the messages matter) from moto's S3 and sends one S3-notification message per key. The reference
# in the same run is the sender a user would script with boto3: list_objects_v2 pages,
# send_message_batch of 10, one batch at a time. BENCH_SENDER_RUNS (default 3) runs each,
# alternating; prints messages/s and the ratio of the medians.
#
# SQS here is scripts/lib/null-sqs.py, which takes every message and keeps none, so the numbers
# are the senders' own (listing, building, signing, round trips). moto's SQS is no measure: it
# takes ~45 messages/s from either sender and slows as its queue fills (about 30/s at 5000).
bench_queue_sender() (
  local objects=${BENCH_SENDER_OBJECTS:-10000} runs=${BENCH_SENDER_RUNS:-3} i sqs_port=5179 sqs_pid
  local bin=${CARGO_TARGET_DIR:-$ROOT/target}/release/clipsearch
  cargo build --release --quiet --workspace --bin clipsearch
  export MOTO_PORT=5178 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export CLIPSEARCH_S3_ENDPOINT=http://127.0.0.1:$MOTO_PORT CLIPSEARCH_SQS_ENDPOINT=http://127.0.0.1:$sqs_port
  mkdir -p "$BENCH_DIR"
  "$PY" scripts/lib/null-sqs.py "$sqs_port" >"$BENCH_DIR/null-sqs.count" &
  sqs_pid=$!
  trap 'kill -TERM $sqs_pid 2>/dev/null || true; bash scripts/moto.sh down >/dev/null 2>&1 || true' EXIT
  trap 'exit 143' TERM
  bash scripts/moto.sh up >&2
  "$PY" - "$objects" <<'PY'
import boto3, os, sys
from concurrent.futures import ThreadPoolExecutor
s3 = boto3.client("s3", endpoint_url=os.environ["CLIPSEARCH_S3_ENDPOINT"])
s3.create_bucket(Bucket="sender")
with ThreadPoolExecutor(8) as pool:
    list(pool.map(lambda i: s3.put_object(Bucket="sender", Key=f"p/{i % 97:02d}/img-{i:07d}.jpg", Body=b""), range(int(sys.argv[1]))))
PY
  local ours=() theirs=() queue=http://127.0.0.1:$sqs_port/123456789012/backfill
  for ((i = 1; i <= runs; i++)); do
    ours+=("$("$bin" index s3://sender/p/ --via-queue "$queue" --no-wait -q | tail -n1 |
      "$PY" -c 'import json,sys; d=json.load(sys.stdin); assert d["sent"] == int(sys.argv[1]), d; print(d["messages_per_second"])' "$objects")")
    theirs+=("$("$PY" - "$objects" "$queue" <<'PY'
import boto3, json, os, sys, time, urllib.parse
n, queue = int(sys.argv[1]), sys.argv[2]
s3 = boto3.client("s3", endpoint_url=os.environ["CLIPSEARCH_S3_ENDPOINT"])
sqs = boto3.client("sqs", endpoint_url=os.environ["CLIPSEARCH_SQS_ENDPOINT"])
started, sent = time.monotonic(), 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="sender", Prefix="p/"):
    keys = [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
    for start in range(0, len(keys), 10):
        entries = [{"Id": str(j), "MessageBody": json.dumps({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
                   "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "sender"},
                   "object": {"key": urllib.parse.quote_plus(k, safe="/"), "size": size}}}]})}
                   for j, (k, size) in enumerate(keys[start:start + 10])]
        answer = sqs.send_message_batch(QueueUrl=queue, Entries=entries)
        assert not answer.get("Failed"), answer
        sent += len(entries)
assert sent == n, sent
print(sent / (time.monotonic() - started))
PY
)")
    echo "run $i: clipsearch ${ours[-1]} msg/s, boto3 ${theirs[-1]} msg/s" >&2
  done
  kill -TERM "$sqs_pid"
  wait "$sqs_pid" || true
  local taken
  taken=$(cat "$BENCH_DIR/null-sqs.count")
  [ "$taken" = $((2 * runs * objects)) ] || { echo "the SQS stand-in took $taken messages, not $((2 * runs * objects))" >&2; return 1; }
  "$PY" - "$objects" "${ours[*]}" "${theirs[*]}" <<'PY'
import statistics, sys
n, ours, theirs = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
print(f"\n{n} objects listed (moto S3) and sent (SQS stand-in), {len(ours)} runs each:\n")
print("| sender | median msg/s | min | max |")
print("|---|---:|---:|---:|")
for name, xs in (("clipsearch index --via-queue (8 batches in flight)", ours), ("boto3, one batch at a time (reference)", theirs)):
    print(f"| {name} | {statistics.median(xs):.0f} | {min(xs):.0f} | {max(xs):.0f} |")
print(f"\nRatio of the medians: {statistics.median(ours) / statistics.median(theirs):.2f}x")
PY
)

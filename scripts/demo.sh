#!/usr/bin/env bash
# `make demo`: the whole product on this machine, no AWS and no Docker.
#   local Milvus, moto (S3 + SQS, bucket notification → queue), both functions under
#   `cargo lambda watch`, the dev relay (queue → ingest function), sample images uploaded to the
#   bucket as a user would, a text search and an image search with curl, the page's URL; then it
#   keeps running until Ctrl-C and stops everything it started.
#
# Environment:
#   DEMO_IMAGES     folder of images to upload instead of the synthetic set (use with real weights)
#   DEMO_COUNT      synthetic images to generate (default 96: two of each colour × shape)
#   DEMO_QUERY      text query (default "a photo of a blue square")
#   DEMO_EXIT       1 = stop after the searches instead of waiting for Ctrl-C (used by tests)
#   CLIPSEARCH_MODEL_DIR  model to use; default models/clip-vit-base-patch32 when present
#                   (`make model`), else the tiny model shipped in tests/fixtures/tiny-clip
#   CLIPSEARCH_TEXT_MODEL_DIR  a multilingual text tower; default: the first one under models/ or
#                   tests/fixtures/ whose text_tower.json names the model (for tiny-clip:
#                   tests/fixtures/tiny-multilingual). With one, a Chinese search follows the
#                   English one (DEMO_QUERY_ZH)
#   MILVUS_PORT (19530), MOTO_PORT (5000), LAMBDA_PORT (9000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

export MILVUS_PORT=${MILVUS_PORT:-19530}
export MOTO_PORT=${MOTO_PORT:-5000}
export LAMBDA_PORT=${LAMBDA_PORT:-9000}
export MILVUS_URI="http://127.0.0.1:$MILVUS_PORT"
export MILVUS_COLLECTION=${MILVUS_COLLECTION:-clipsearch_demo}
export CLIPSEARCH_S3_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
export CLIPSEARCH_BUCKET=${CLIPSEARCH_BUCKET:-clipsearch-demo}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_REGION=${AWS_REGION:-us-east-1}
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$ROOT/vendor/onnxruntime/libonnxruntime.so.1.31.1}
export RUST_LOG=${RUST_LOG:-warn}
if [ -z "${CLIPSEARCH_MODEL_DIR:-}" ]; then
  if [ -f models/clip-vit-base-patch32/tokenizer.json ]; then
    CLIPSEARCH_MODEL_DIR=$ROOT/models/clip-vit-base-patch32
  else
    CLIPSEARCH_MODEL_DIR=$ROOT/tests/fixtures/tiny-clip
  fi
fi
export CLIPSEARCH_MODEL_DIR
if [ -z "${CLIPSEARCH_TEXT_MODEL_DIR:-}" ]; then
  model_name=$(basename "$CLIPSEARCH_MODEL_DIR")
  for tower in "$ROOT"/models/*/text_tower.json "$ROOT"/tests/fixtures/*/text_tower.json; do
    [ -f "$tower" ] || continue
    if python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["image_model"] != sys.argv[2])' \
      "$tower" "$model_name"; then
      CLIPSEARCH_TEXT_MODEL_DIR=$(dirname "$tower")
      break
    fi
  done
fi
[ -n "${CLIPSEARCH_TEXT_MODEL_DIR:-}" ] && export CLIPSEARCH_TEXT_MODEL_DIR
QUERY=${DEMO_QUERY:-a photo of a blue square}
QUERY_ZH=${DEMO_QUERY_ZH:-一张蓝色正方形的照片}
PY=$ROOT/.venv/bin/python
CLI=${CARGO_TARGET_DIR:-$ROOT/target}/release/clipsearch
SEARCH_URL="http://127.0.0.1:$LAMBDA_PORT/lambda-url/search"
WORK=$ROOT/.local/demo
# Calls to the search function. `cargo lambda watch` itself now and then fails a call with a
# large answer (its own 500, or no answer at all: docs/ingest.md): bounded, and sent again.
api() { curl -fsS --max-time 60 --retry 3 --retry-delay 0 "$@"; }
mkdir -p "$WORK"
# The demo's services keep their state (pidfiles, logs, data) here, so stopping them never
# touches a Milvus, moto or emulator the user started with the scripts on the same ports: those
# make `up` fail with "port in use" instead. Milvus starts on empty data: moto keeps the bucket
# in memory, so an index kept from an earlier demo would point at objects that no longer exist.
export MILVUS_HOME=$WORK/milvus MOTO_HOME=$WORK/moto LAMBDA_HOME=$WORK/lambda
relay_pid=

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

cleanup() {
  trap - EXIT INT TERM
  say "stopping everything the demo started"
  if [ -n "$relay_pid" ]; then kill "$relay_pid" 2>/dev/null || true; wait "$relay_pid" 2>/dev/null || true; fi
  bash scripts/lambda.sh down || true
  bash scripts/moto.sh down || true
  bash scripts/milvus.sh down || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "model: $CLIPSEARCH_MODEL_DIR${CLIPSEARCH_TEXT_MODEL_DIR:+, text queries: $CLIPSEARCH_TEXT_MODEL_DIR}"
say "local Milvus on :$MILVUS_PORT (fresh data in $MILVUS_HOME)"
bash scripts/milvus.sh up --fresh
say "S3 + SQS emulator on :$MOTO_PORT, bucket $CLIPSEARCH_BUCKET → queue (bucket notification)"
bash scripts/moto.sh up
queues=$("$PY" scripts/local-aws.py --bucket "$CLIPSEARCH_BUCKET")
queue_url=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["queue_url"])' "$queues")
say "ingest and search functions under cargo lambda watch on :$LAMBDA_PORT"
# Five ingest instances for the relay's five pollers, as Lambda's SQS event source starts with.
LAMBDA_CONCURRENCY=${LAMBDA_CONCURRENCY:-5} bash scripts/lambda.sh up
say "dev relay: $queue_url → ingest function (${DEMO_POLLERS:-5} batches in flight)"
"$CLI" relay --queue-url "$queue_url" --pollers "${DEMO_POLLERS:-5}" > "$WORK/relay.log" 2>&1 &
relay_pid=$!

if [ -n "${DEMO_IMAGES:-}" ]; then
  images=$DEMO_IMAGES
else
  images=$WORK/images
  rm -rf "$images"
  say "generating ${DEMO_COUNT:-96} synthetic colour × shape images"
  "$PY" tools/gen_synthetic.py "$images" --count "${DEMO_COUNT:-96}" --seed 42 > /dev/null
fi
say "uploading them to s3://$CLIPSEARCH_BUCKET/photos/ (as a user would)"
uploads_began=$(date +%s.%N)
# Synthetic images are uploaded under names that say what they show (photos/blue-square-0007.png),
# so the ranked keys below can be checked by eye; a user's folder keeps its relative paths.
expected=$("$PY" - "$images" "$CLIPSEARCH_BUCKET" <<'PY'
import json, os, sys, boto3
root, bucket = sys.argv[1:3]
s3 = boto3.client("s3", endpoint_url=os.environ["CLIPSEARCH_S3_ENDPOINT"])
labels = {}
if os.path.exists(os.path.join(root, "labels.jsonl")):
    for line in open(os.path.join(root, "labels.jsonl")):
        row = json.loads(line)
        labels[row["file"]] = f'{row["colour"]}-{row["shape"]}-{row["file"].split("_")[-1]}'
n = 0
for dirpath, _, files in os.walk(root):
    for name in sorted(files):
        if name.lower().endswith((".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            s3.upload_file(path, bucket, "photos/" + labels.get(rel, rel))
            n += 1
print(n)
PY
)
say "waiting until ingest has indexed all $expected images"
for _ in $(seq 1 600); do
  # The index answers with at most 100 results: enough to count a demo set.
  indexed=$(api --max-time 20 -X POST "$SEARCH_URL/search" -H 'content-type: application/json' \
      -d '{"text": "a photo", "top_k": 100, "prefix": "photos/"}' 2>/dev/null |
    "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["results"]))' 2>/dev/null || echo 0)
  printf '\r   indexed %s / %s' "$indexed" "$expected"
  [ "$indexed" -ge "$(( expected < 100 ? expected : 100 ))" ] && break
  sleep 1
done
echo
say "indexed in $(echo "$(date +%s.%N) - $uploads_began" | bc | xargs printf '%.1f') s from the first upload"

show() {
  "$PY" -c '
import json, sys
doc = json.load(sys.stdin)
print("   model {}, {:.1f} ms".format(doc.get("model"), doc.get("took_ms", 0)))
for i, r in enumerate(doc["results"], 1):
    print("   {:2}. {:.4f}  s3://{}/{}".format(i, r["score"], r["bucket"], r["key"]))
'
}
say "text search: \"$QUERY\""
api -X POST "$SEARCH_URL/search" -H 'content-type: application/json' \
  -d "$("$PY" -c 'import json,sys; print(json.dumps({"text": sys.argv[1], "top_k": 5}))' "$QUERY")" | show
if [ -n "${CLIPSEARCH_TEXT_MODEL_DIR:-}" ]; then
  say "the same search in Chinese: \"$QUERY_ZH\" (text tower $(basename "$CLIPSEARCH_TEXT_MODEL_DIR"))"
  api -X POST "$SEARCH_URL/search" -H 'content-type: application/json' \
    -d "$("$PY" -c 'import json,sys; print(json.dumps({"text": sys.argv[1], "top_k": 5}))' "$QUERY_ZH")" | show
fi
sample=$(find "$images" -type f \( -name '*.jpg' -o -name '*.png' -o -name '*.webp' \) | sort | head -n 1)
what=$("$PY" - "$images" "$sample" <<'PY'
import json, os, sys
root, sample = sys.argv[1:3]
labels = os.path.join(root, "labels.jsonl")
rows = [json.loads(l) for l in open(labels)] if os.path.exists(labels) else []
row = next((r for r in rows if r["file"] == os.path.basename(sample)), None)
print(f'{os.path.basename(sample)}, a {row["colour"]} {row["shape"]}' if row else os.path.basename(sample))
PY
)
say "image search with $what (expect itself first with a score of about 1, then its look-alikes)"
api -X POST "$SEARCH_URL/search?top_k=5" -H "content-type: $("$PY" -c 'import mimetypes,sys; print(mimetypes.guess_type(sys.argv[1])[0])' "$sample")" \
  --data-binary "@$sample" | show

say "search page: $SEARCH_URL/"
if [ "${DEMO_EXIT:-0}" = 1 ]; then exit 0; fi
echo "   (Ctrl-C stops Milvus, the emulators, the functions and the relay)"
# From here Ctrl-C is the normal way out: clean up and report success.
trap 'exit 0' INT TERM
while true; do sleep 3600; done

# The ingest function's work in a fresh process (issue 14; shared/examples/bench_ingest.rs): init,
# the first record end to end (S3 GET from moto, a real Milvus, embedding, insert), then a batch
# of the rest at the function's concurrency, and the process's peak RSS. Each run uploads new
# content (the bench JPEGs with a run-specific tail after the JPEG end marker, which decoders
# ignore), so every record is embedded, never found as a duplicate. The collection exists before
# the measured runs (a warm-up run creates it), as on a deployed function.
# Knobs: BENCH_INGEST_MODELS (default "vitb32 vitb32-int8"; NAME-opt also works),
# BENCH_INGEST_RUNS (default 5), BENCH_INGEST_OBJECTS (objects per run, default 10: an SQS
# batch), BENCH_INGEST_CONCURRENCY (default: the function's, CLIPSEARCH_INGEST_CONCURRENCY unset).
bench_ingest() {
  cargo build --release --quiet -p clipsearch --example bench_ingest
  local bin=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench_ingest model dir run
  local res=$BENCH_DIR/results/ingest-$(date +%Y%m%d-%H%M%S)
  local objects=${BENCH_INGEST_OBJECTS:-10} runs=${BENCH_INGEST_RUNS:-5}
  mkdir -p "$res"
  clip_images
  export MILVUS_PORT=19680 MILVUS_HEALTH_PORT=9197 MILVUS_ETCD_PORT=2679 MOTO_PORT=5177
  export MILVUS_URI=http://127.0.0.1:$MILVUS_PORT CLIPSEARCH_S3_ENDPOINT=http://127.0.0.1:$MOTO_PORT
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
  export CLIPSEARCH_INTRA_THREADS=$BENCH_THREADS
  [ -n "${BENCH_INGEST_CONCURRENCY:-}" ] && export CLIPSEARCH_INGEST_CONCURRENCY=$BENCH_INGEST_CONCURRENCY
  trap 'bash scripts/moto.sh down >/dev/null 2>&1 || true; bash scripts/milvus.sh down >/dev/null 2>&1 || true' EXIT
  step "services: Milvus :$MILVUS_PORT, moto :$MOTO_PORT"
  bash scripts/milvus.sh up --fresh >&2
  bash scripts/moto.sh up >&2
  local bucket=clipsearch-bench-ingest
  upload() { # PREFIX: BENCH_INGEST_OBJECTS new objects under it
    "$PY" - "$bucket" "$1" "$objects" "$(clip_image_dir)" <<'PY'
import boto3, glob, os, sys
bucket, prefix, n, images = sys.argv[1], sys.argv[2], int(sys.argv[3]), sorted(glob.glob(sys.argv[4] + "/*.jpg"))
s3 = boto3.client("s3", endpoint_url=os.environ["CLIPSEARCH_S3_ENDPOINT"])
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
for i in range(n):
    body = open(images[i % len(images)], "rb").read() + f"\n{prefix}{i}".encode()
    s3.put_object(Bucket=bucket, Key=f"{prefix}{i:03d}.jpg", Body=body)
PY
  }
  for model in ${BENCH_INGEST_MODELS:-vitb32 vitb32-int8}; do
    case $model in
      vitb32) clip_random_model vitb32 ;;
      vitb32-int8) clip_int8_model ;;
      *-opt) clip_optimized_model "$model" ;;
    esac
    dir=$(clip_model_dir "$model")
    export MILVUS_COLLECTION=bench_ingest_${model//-/_}
    step "$model: warm-up (creates the collection), then $runs runs of $objects objects"
    upload "$model/warmup/"
    CLIPSEARCH_MODEL_DIR=$dir "$bin" --bucket "$bucket" --prefix "$model/warmup/" > /dev/null
    for run in $(seq 1 "$runs"); do
      upload "$model/run$run/"
      CLIPSEARCH_MODEL_DIR=$dir "$bin" --bucket "$bucket" --prefix "$model/run$run/" >> "$res/$model.jsonl"
    done
  done
  "$PY" - "$res" ${BENCH_INGEST_MODELS:-vitb32 vitb32-int8} <<'PY'
import json, statistics, sys
res, models = sys.argv[1], sys.argv[2:]
print(f"\nraw JSON lines in {res}\n")
print("| model | concurrency | init ms | first record ms | exec to first record ms (median; min-max) | batch of the rest: records, ms, ms/record | peak RSS MiB (median; max) |")
print("|---|---:|---:|---:|---:|---|---:|")
for m in models:
    rows = [json.loads(l) for l in open(f"{res}/{m}.jsonl")]
    med = lambda k: statistics.median(r[k] for r in rows)
    ready = [r["ready_ms"] for r in rows]
    n = rows[0]["batch_records"]
    print(f"| {m} | {rows[0]['concurrency']} | {med('init_ms'):.0f} | {med('first_record_ms'):.0f} | "
          f"**{med('ready_ms'):.0f}** ({min(ready):.0f}-{max(ready):.0f}), n={len(rows)} | {n}, {med('batch_ms'):.0f}, "
          f"{med('batch_ms') / max(n, 1):.0f} | **{med('peak_rss_mib'):.0f}** ({max(r['peak_rss_mib'] for r in rows):.0f}) |")
PY
}

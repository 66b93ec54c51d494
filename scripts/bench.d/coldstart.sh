# Cold start (issue 14): exec to the first embedding, a fresh process each time
# (shared/examples/bench_cold_start.rs), BENCH_COLD_RUNS times (default 7), medians. "text" is
# the search function's init plus its first text query (text tower only); "image" is ingest's
# init plus its first image (vision tower only); "both" loads the two towers (a search function
# that also takes images) and answers a text query. Models: BENCH_COLD_MODELS (default vitb32;
# NAME-opt is the `clipsearch optimize-model` copy of NAME).
bench_coldstart() {
  cargo build --release --quiet -p clipsearch --example bench_cold_start
  local bin=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench_cold_start model dir first i
  local res=$BENCH_DIR/results/coldstart-$(date +%Y%m%d-%H%M%S)
  mkdir -p "$res"
  clip_images
  local image
  image=$(ls "$(clip_image_dir)"/*.jpg | head -1)
  for model in ${BENCH_COLD_MODELS:-vitb32}; do
    case $model in
      vitb32 | siglip-base | chinese-clip-base) clip_random_model "$model" ;;
      vitb32-int8) clip_int8_model ;;
      *-opt) clip_optimized_model "$model" ;;
    esac
    dir=$(clip_model_dir "$model")
    for first in text image both; do
      step "$model: $first cold start x ${BENCH_COLD_RUNS:-7}"
      for i in $(seq 1 "${BENCH_COLD_RUNS:-7}"); do
        CLIPSEARCH_INTRA_THREADS=$BENCH_THREADS "$bin" --model "$dir" --first "$first" --image "$image" \
          >> "$res/$model.$first.jsonl"
      done
    done
  done
  "$PY" - "$res" ${BENCH_COLD_MODELS:-vitb32} <<'PY'
import json, statistics, sys
res, models = sys.argv[1], sys.argv[2:]
print(f"\nraw JSON lines in {res}\n")
print("| model | first | exec ms | ONNX Runtime ms | model load ms | first embedding ms | total ms (median; min-max) |")
print("|---|---|---:|---:|---:|---:|---:|")
for m in models:
    for first in ("text", "image", "both"):
        rows = [json.loads(l) for l in open(f"{res}/{m}.{first}.jsonl")]
        med = lambda k: statistics.median(r[k] for r in rows)
        tot = [r["total_ms"] for r in rows]
        print(f"| {m} | {first} | {med('exec_ms'):.0f} | {med('runtime_ms'):.0f} | {med('load_ms'):.0f} | "
              f"{med('first_ms'):.0f} | **{med('total_ms'):.0f}** ({min(tot):.0f}-{max(tot):.0f}), n={len(rows)} |")
PY
}

# The text-query path (issue 14): handler time of a repeated query with the query cache off and
# on, and eight distinct queries as eight requests vs one POST /search/batch. In-memory index
# (BENCH_QUERY_ROWS random vectors), so these are the handler's own times. Models: BENCH_QUERY_MODELS
# (default "tiny-clip vitb32").
bench_query() {
  cargo build --release --quiet -p clipsearch --example bench_query
  local bin=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench_query model dir
  local res=$BENCH_DIR/results/query-$(date +%Y%m%d-%H%M%S)
  mkdir -p "$res"
  for model in ${BENCH_QUERY_MODELS:-tiny-clip vitb32}; do
    case $model in vitb32) clip_random_model vitb32 ;; vitb32-int8) clip_int8_model ;; esac
    dir=$(clip_model_dir "$model")
    step "$model: bench_query"
    CLIPSEARCH_INTRA_THREADS=$BENCH_THREADS "$bin" --model "$dir" --rows "${BENCH_QUERY_ROWS:-10000}" \
      > "$res/$model.json"
  done
  "$PY" - "$res" ${BENCH_QUERY_MODELS:-tiny-clip vitb32} <<'PY'
import json, sys
res, models = sys.argv[1], sys.argv[2:]
print(f"\nraw JSON in {res}\n")
print("| model | case | p50 ms | p90 ms | n |")
print("|---|---|---:|---:|---:|")
for m in models:
    d = json.load(open(f"{res}/{m}.json"))
    for case in ("repeated_query_no_cache", "repeated_query_cached", "eight_queries_one_by_one", "eight_queries_one_batch"):
        c = d[case]
        print(f"| {m} | {case.replace('_', ' ')} | {c['p50_ms']:.2f} | {c['p90_ms']:.2f} | {c['n']} |")
    off, on = d["repeated_query_no_cache"]["p50_ms"], d["repeated_query_cached"]["p50_ms"]
    one, batch = d["eight_queries_one_by_one"]["p50_ms"], d["eight_queries_one_batch"]["p50_ms"]
    print(f"| {m} | **cache: {off / on:.1f}x faster; batch: {one / batch:.2f}x** | | | |")
PY
}

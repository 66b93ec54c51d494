# Thumbnails (issue 16): the CPU a thumbnail adds to ingest per 12 MP JPEG (decoded at the DCT
# scale ingest uses for a 224-px model, then scaled to 384 px and JPEG-encoded), and the bytes a
# result tile costs with and without it (shared/examples/bench_thumbnail.rs, single thread).
bench_thumbnail() {
  cargo build --release --quiet -p clipsearch --example bench_thumbnail
  clip_images
  step "thumbnail: decode vs decode + thumbnail on $(clip_image_dir)"
  local out
  out=$(${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench_thumbnail --dir "$(clip_image_dir)" --reps "${BENCH_THUMBNAIL_REPS:-5}")
  "$PY" - "$out" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print(f"\n{r['images']} JPEGs x {r['reps']} reps, medians\n")
print("| decode ms | decode + thumbnail ms | thumbnail ms (share of decode) | original KB | thumbnail KB (ratio) |")
print("|---:|---:|---:|---:|---:|")
print(f"| {r['decode_ms']:.1f} | {r['decode_and_thumbnail_ms']:.1f} | {r['thumbnail_ms']:.1f} ({r['thumbnail_ms'] / r['decode_ms']:.0%}) "
      f"| {r['original_bytes'] / 1024:.0f} | {r['thumbnail_bytes'] / 1024:.1f} ({r['original_bytes'] / r['thumbnail_bytes']:.0f}x smaller) |")
PY
}

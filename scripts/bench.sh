#!/usr/bin/env bash
# Benchmarks (`make bench`). Each section is a shell function `bench_<name>`; the ones named in
# BENCH_SECTIONS run, in the order given (space- or comma-separated, e.g. BENCH_SECTIONS=clip;
# default: all that exist, alphabetically). To add a section, define `bench_<name>` in this file or
# in scripts/bench.d/<name>.sh (sourced below). Sections print markdown for BENCHMARKS.md and
# never write it: results are pasted by hand, with the command that produced them.
#
# Every comparison with the Python reference is made in the same run, round by round
# (reference, then Rust, on the same files and threads), and reported as ratios, because the
# machine may be shared. Knobs:
#   BENCH_DIR      where generated inputs and raw results go (default /tmp/clipsearch-bench;
#                  outside the repository: the ViT-B/32 model alone is ~600 MB)
#   BENCH_THREADS  ONNX Runtime intra-op threads for both sides, and Rust decode threads
#                  (default: nproc)
#   BENCH_ROUNDS   rounds per model (default 3); the table shows medians
#   BENCH_IMAGES   number of 12 MP JPEGs (default 16)
#   BENCH_TEXTS    number of captions for text embeddings/s (default 64)
#   BENCH_IMAGE_SET  12mp (default: 4000x3000 JPEGs) or 1mp (1152x864)
#   BENCH_INT8_MODE  tools/quantize_model.py mode of vitb32-int8 (default dynamic)
#   (scripts/bench.d/query.sh, coldstart.sh and ingest.sh document their own BENCH_QUERY_*,
#   BENCH_COLD_* and BENCH_INGEST_*)
#   BENCH_MODELS   CLIP section models (default "tiny-clip vitb32"; also tiny-siglip, tiny-chinese-clip,
#                  tiny-multilingual, and the full-size random-weight vitb32-int8, siglip-base, chinese-clip-base,
#                  multilingual-tower, generated into BENCH_DIR on first use). A text tower alone
#                  (text_tower.json: tiny-multilingual, multilingual-tower) is benched on its text side
#                  only, paired with the image model it names (tiny-clip, vitb32).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$ROOT/vendor/onnxruntime/libonnxruntime.so.1.31.1}
BENCH_DIR=${BENCH_DIR:-/tmp/clipsearch-bench}
BENCH_THREADS=${BENCH_THREADS:-$(nproc)}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_IMAGES=${BENCH_IMAGES:-16}
BENCH_TEXTS=${BENCH_TEXTS:-64}
PY=$ROOT/.venv/bin/python            # reference deps (make setup)
PY_BENCH=$ROOT/.venv-bench/bin/python # + torch/onnx, only to export the random full-size models

step() { printf '\n==> %s\n' "$*" >&2; }

machine_summary() {
  local cpu
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  echo "Machine: $(nproc) cores (nproc), ${cpu:-unknown CPU}, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
}

ensure_bench_venv() {
  if [ ! -x "$PY_BENCH" ] || ! "$PY_BENCH" -c 'import torch, onnx, transformers' 2>/dev/null; then
    step "Python venv .venv-bench (tools/requirements-bench.txt)"
    python3 -m venv .venv-bench
    .venv-bench/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-bench.txt
  fi
}

# ---------------------------------------------------------------------------------------------
# CLIP encoders (issue 2): decode+preprocess, inference, end to end on 12 MP JPEGs, text/s.
# ---------------------------------------------------------------------------------------------
# The JPEG set of BENCH_IMAGE_SET: 12mp (4000x3000 phone photos, the default) or 1mp (1152x864).
clip_image_dir() { echo "$BENCH_DIR/jpeg${BENCH_IMAGE_SET:-12mp}"; }

clip_images() {
  local dir stamp want size
  dir=$(clip_image_dir)
  case ${BENCH_IMAGE_SET:-12mp} in
    12mp) size=4000x3000 ;;
    1mp) size=1152x864 ;;
    *) echo "BENCH_IMAGE_SET=${BENCH_IMAGE_SET} (12mp or 1mp)" >&2; exit 2 ;;
  esac
  stamp=$dir/.stamp
  want="$(sha256sum tools/make_bench_images.py | cut -d' ' -f1) count=$BENCH_IMAGES size=$size"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    step "$BENCH_IMAGES $size JPEGs in $dir (tools/make_bench_images.py)"
    rm -rf "$dir"
    "$PY" tools/make_bench_images.py "$dir" --count "$BENCH_IMAGES" --size "$size" | tail -1 >&2
    echo "$want" > "$stamp"
  fi
}

# The full-size random-weight models, made on first use (the stamp is the maker's hash: a changed
# maker re-exports). vitb32: tools/make_vitb32_random.py (~600 MB); siglip-base, chinese-clip-base,
# multilingual-tower: tools/make_full_family_random.py (~810, ~750, ~540 MB).
clip_random_model() {
  local name=$1 out=$BENCH_DIR/$1 maker want
  maker=tools/make_full_family_random.py
  [ "$name" = vitb32 ] && maker=tools/make_vitb32_random.py
  want=$(sha256sum "$maker" | cut -d' ' -f1)
  if [ "$(cat "$out/.stamp" 2>/dev/null)" != "$want" ]; then
    ensure_bench_venv
    step "random-weight $name in $out ($maker)"
    rm -rf "$out.tmp"
    if [ "$name" = vitb32 ]; then
      "$PY_BENCH" "$maker" "$out.tmp" --tokenizer tests/fixtures/tiny-clip/tokenizer.json
    else
      "$PY_BENCH" "$maker" "$name" "$out.tmp"
    fi 2>&1 | grep -E '^params|^exported in|max abs diff| MB  ' >&2
    echo "$want" > "$out.tmp/.stamp"
    rm -rf "$out"
    mv "$out.tmp" "$out"
  fi
}

# vitb32-int8: the random ViT-B/32 quantized by tools/quantize_model.py (BENCH_INT8_MODE, default
# dynamic), beside it in BENCH_DIR; re-made when the quantizer or the fp32 model changes.
clip_int8_model() {
  local fp32=$BENCH_DIR/vitb32 out=$BENCH_DIR/vitb32-int8 want
  clip_random_model vitb32
  want="$(sha256sum tools/quantize_model.py | cut -d' ' -f1) $(cat "$fp32/.stamp") mode=${BENCH_INT8_MODE:-dynamic}"
  if [ "$(cat "$out/.stamp" 2>/dev/null)" != "$want" ]; then
    ensure_bench_venv
    step "int8 ViT-B/32 in $out (tools/quantize_model.py --mode ${BENCH_INT8_MODE:-dynamic})"
    rm -rf "$out.tmp"
    "$PY_BENCH" tools/quantize_model.py "$fp32" "$out.tmp" --mode "${BENCH_INT8_MODE:-dynamic}" >&2
    echo "$want" > "$out.tmp/.stamp"
    rm -rf "$out"
    mv "$out.tmp" "$out"
  fi
}

# NAME-opt: `clipsearch optimize-model` of the bench model NAME (vitb32, vitb32-int8), the form
# that loads faster at a cold start.
clip_optimized_model() {
  local base=${1%-opt} out=$BENCH_DIR/$1 want
  case $base in
    vitb32-int8) clip_int8_model ;;
    *) clip_random_model "$base" ;;
  esac
  cargo build --release --quiet -p clipsearch-cli
  want="optimize-model of $(cat "$BENCH_DIR/$base/.stamp")"
  if [ "$(cat "$out/.stamp" 2>/dev/null)" != "$want" ]; then
    step "optimised copy of $base in $out (clipsearch optimize-model)"
    rm -rf "$out"
    "${CARGO_TARGET_DIR:-$ROOT/target}/release/clipsearch" optimize-model "$BENCH_DIR/$base" "$out" >&2
    echo "$want" > "$out/.stamp"
  fi
}

clip_model_dir() {
  case $1 in
    vitb32-opt | vitb32-int8-opt) echo "$BENCH_DIR/$1" ;;
    tiny-clip | tiny-siglip | tiny-chinese-clip | tiny-multilingual) echo "$ROOT/tests/fixtures/$1" ;;
    vitb32 | vitb32-int8 | siglip-base | chinese-clip-base | multilingual-tower) echo "$BENCH_DIR/$1" ;;
    *) echo "$1" ;;
  esac
}

# For a text tower alone (text_tower.json), the bench name of the image model it pairs with.
clip_paired_image_model() {
  [ -f "$1/text_tower.json" ] && "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["image_model"])' \
    "$1/text_tower.json"
}

# Reference text embeddings/s: tools/reference.py's own Clip.embed_texts (one text at a time),
# on the same captions as examples/bench_clip.rs, after a warm-up. $2: the file for its peak RSS.
clip_reference_texts() {
  local run=("$PY")
  [ -x /usr/bin/time ] && run=(/usr/bin/time -f %M -o "$2" "$PY")
  "${run[@]}" - "$1" "$BENCH_THREADS" "$BENCH_TEXTS" <<'PY'
import json, sys, time
sys.path.insert(0, "tools")
from reference import Clip
model, threads, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
THINGS = ["a cat", "a dog on a beach", "the rocket on the launch pad", "a cup of coffee", "an astronaut",
          "a red motorcycle parked in the street", "stars and galaxies", "a microscope slide"]
STYLES = ["a photo of {}", "{}", "a blurry picture of {} taken at night with a phone",
          "a close-up photograph of {}, high resolution, natural light, shallow depth of field"]
texts = [STYLES[(i // len(THINGS)) % len(STYLES)].replace("{}", THINGS[i % len(THINGS)]) for i in range(n)]
clip = Clip(model, threads)
clip.embed_texts(texts[:8] + ["warm up"])
t0 = time.perf_counter()
clip.embed_texts(texts)
dt = time.perf_counter() - t0
print(json.dumps({"texts": n, "text_one_at_a_time_per_s": round(n / dt, 2)}))
PY
}

clip_no_rss() { shift; "$@"; }

bench_clip() {
  local models=${BENCH_MODELS:-tiny-clip vitb32}
  local res=$BENCH_DIR/results/clip-$(date +%Y%m%d-%H%M%S)
  step "CLIP encoders: building examples/bench_clip (release)"
  cargo build --release --quiet -p clipsearch --example bench_clip
  local rust_bin=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench_clip
  clip_images
  local images model dir round timer=clip_no_rss paired rust_args
  images=$(clip_image_dir)
  for model in $models; do
    case $model in
      vitb32 | siglip-base | chinese-clip-base) clip_random_model "$model" ;;
      vitb32-int8) clip_int8_model ;;
      multilingual-tower) clip_random_model vitb32 && clip_random_model "$model" ;; # paired with vitb32
    esac
  done
  mkdir -p "$res"
  # The reference's peak RSS from GNU time (%M, KiB), when installed.
  [ -x /usr/bin/time ] && timer="/usr/bin/time -f %M -o"
  for model in $models; do
    dir=$(clip_model_dir "$model")
    paired=$(clip_paired_image_model "$dir" || true)
    # A text tower alone: no image side; Rust loads it as CLIPSEARCH_TEXT_MODEL_DIR beside its image
    # model (text tower only), the reference embeds texts with the tower folder alone.
    rust_args=(--model "$dir" --images "$images")
    [ -n "$paired" ] && rust_args=(--model "$(clip_model_dir "$paired")" --text-tower "$dir")
    for round in $(seq 1 "$BENCH_ROUNDS"); do
      if [ -z "$paired" ]; then
        step "$model, round $round/$BENCH_ROUNDS: reference.py bench"
        $timer "$res/$model.$round.ref.rss" \
          "$PY" tools/reference.py --threads "$BENCH_THREADS" bench "$dir" "$images" --batch 8 \
          > "$res/$model.$round.ref.json" 2> >(grep -v 'PyTorch was not found' >&2)
      fi
      step "$model, round $round/$BENCH_ROUNDS: reference text embeddings"
      clip_reference_texts "$dir" "$res/$model.$round.reftext.rss" > "$res/$model.$round.reftext.json" \
        2> >(grep -v 'PyTorch was not found' >&2)
      step "$model, round $round/$BENCH_ROUNDS: bench_clip"
      "$rust_bin" "${rust_args[@]}" --batch 8 --intra-threads "$BENCH_THREADS" \
        --decode-threads "$BENCH_THREADS" --texts "$BENCH_TEXTS" > "$res/$model.$round.rust.json"
    done
  done
  step "CLIP encoders: raw results in $res"
  "$PY" - "$res" "$BENCH_ROUNDS" "$BENCH_THREADS" $models <<'PY'
import json, os, statistics, sys
res, rounds, threads, models = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
def load(m, r, kind):
    try:
        with open(os.path.join(res, f"{m}.{r}.{kind}.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None  # a text tower alone has no image run
def rss(m, r, kind="ref"):
    try:
        with open(os.path.join(res, f"{m}.{r}.{kind}.rss")) as f:
            return int(f.read().split()[-1]) / 1024
    except (OSError, ValueError, IndexError):
        return float("nan")
# (label, reference value, Rust value); the ratio is Rust/reference, per round, then the median.
rows = [
    ("decode+preprocess img/s, 1 thread", lambda R, T, X: R["decode+preprocess_img_per_s"],
     lambda R, T, X: X["decode+preprocess_1thread_img_per_s"]),
    (f"decode+preprocess img/s, Rust on {threads} threads", lambda R, T, X: R["decode+preprocess_img_per_s"],
     lambda R, T, X: X["decode+preprocess_img_per_s"]),
    ("inference img/s (batch 8)", lambda R, T, X: R["inference_img_per_s"], lambda R, T, X: X["inference_img_per_s"]),
    ("end to end img/s", lambda R, T, X: R["end_to_end_img_per_s"], lambda R, T, X: X["end_to_end_img_per_s"]),
    ("text embeddings/s, one at a time", lambda R, T, X: T["text_one_at_a_time_per_s"],
     lambda R, T, X: X["text_one_at_a_time_per_s"]),
    ("text embeddings/s, Rust batched (8)", lambda R, T, X: T["text_one_at_a_time_per_s"],
     lambda R, T, X: X["text_batch_per_s"]),
]
med = statistics.median
print(f"| model | metric | reference | Rust | Rust/reference (median of {rounds} rounds; min-max) |")
print("|---|---|---:|---:|---|")
for m in models:
    data = [(load(m, r, "ref"), load(m, r, "reftext"), load(m, r, "rust")) for r in range(1, rounds + 1)]
    text_only = data[0][0] is None
    for label, ref, rust in rows[-2:] if text_only else rows:
        rv = [ref(*d) for d in data]; xv = [rust(*d) for d in data]
        ratios = [x / r for r, x in zip(rv, xv)]
        print(f"| {m} | {label} | {med(rv):.2f} | {med(xv):.2f} | **{med(ratios):.2f}x** "
              f"({min(ratios):.2f}-{max(ratios):.2f}) |")
    if text_only:  # peak RSS of the text runs alone, on both sides
        rv = [rss(m, r, "reftext") for r in range(1, rounds + 1)]; xv = [d[2]["peak_rss_mib"] for d in data]
        print(f"| {m} | peak RSS MiB (text tower only) | {med(rv):.0f} | {med(xv):.0f} | |")
        continue
    rv = [1e3 / d[0]["decode+preprocess_img_per_s"] for d in data]
    xv = [d[2]["decode+preprocess_1thread_ms_per_image"] for d in data]
    xn = [d[2]["decode+preprocess_ms_per_image"] for d in data]
    print(f"| {m} | decode+preprocess ms/image (1 thread; Rust {threads} threads) | {med(rv):.1f} | "
          f"{med(xv):.1f} ({med(xn):.1f}) | {med([x / r for r, x in zip(rv, xv)]):.3f} "
          f"({med([x / r for r, x in zip(rv, xn)]):.3f}) of the reference's time |")
    rv = [d[0]["ms_per_image_end_to_end"] for d in data]; xv = [d[2]["ms_per_image_end_to_end"] for d in data]
    print(f"| {m} | end to end ms/image | {med(rv):.1f} | {med(xv):.1f} | |")
    rv = [rss(m, r) for r in range(1, rounds + 1)]; xv = [d[2]["peak_rss_mib"] for d in data]
    print(f"| {m} | peak RSS MiB | {med(rv):.0f} | {med(xv):.0f} | |")
PY
}

# Sections kept in their own files (scripts/bench.d/<name>.sh defining bench_<name>).
if [ -d scripts/bench.d ]; then
  for f in scripts/bench.d/*.sh; do
    [ -e "$f" ] && . "$f"
  done
fi

# `scripts/bench.sh --venv` (`make bench-setup`): only the torch venv, for the model exporters.
if [ "${1:-}" = "--venv" ]; then
  ensure_bench_venv
  exit 0
fi

available=$(declare -F | awk '{print $3}' | grep '^bench_' | sed 's/^bench_//')
wanted=${BENCH_SECTIONS:-all}
wanted=${wanted//,/ }
[ "$wanted" = all ] && wanted=$available
for s in $wanted; do
  if ! grep -qx "$s" <<<"$available"; then
    echo "unknown benchmark section '$s' (available: $(echo $available))" >&2
    exit 2
  fi
done
machine_summary
for s in $wanted; do
  step "section $s"
  "bench_$s"
done

#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser that takes outside input (fuzz/, cargo fuzz with
# libFuzzer; AddressSanitizer in long runs).
#
#   scripts/fuzz.sh smoke [TARGET...]        each target for FUZZ_SMOKE_SECONDS (default 15): `make test`
#   scripts/fuzz.sh run SECONDS [TARGET...]  each target for SECONDS (`make fuzz`, FUZZ_SECONDS)
#   scripts/fuzz.sh regressions              every saved finding, once per target
#   scripts/fuzz.sh list                     the targets
#
# The corpus of each target grows in .local/fuzz/corpus/<target> (seeded from the test fixtures
# on first use: tests/fixtures/parity/images, tests/fixtures/bad, tests/events, fuzz/seeds/; the
# smoke starts from those seeds in a temporary directory);
# a run's libFuzzer log and its last stats line go to .local/fuzz/logs/. A crash, leak, timeout
# or out-of-memory input is saved in fuzz/artifacts/<target>/ and fails the run: copy it to
# fuzz/regressions/<target>/ with the fix and its regression test, so `regressions` (and every
# smoke run) replays it from then on.
#
# The machines here have one Rust toolchain (stable); cargo fuzz needs nightly's -Z flags, which
# RUSTC_BOOTSTRAP=1 unlocks on stable for this build only (the fuzz crate is its own workspace,
# built into fuzz/target, so the product's build never sees the flag).
# Env: FUZZ_RSS_LIMIT_MB (default 2048, what one decode may reach under the pixel limit),
# FUZZ_TIMEOUT (seconds per input, default 10), FUZZ_JOBS (parallel targets, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CARGO_FUZZ_VERSION=0.13.2
TARGETS=(decode_preprocess events search_request filter)
export RUSTC_BOOTSTRAP=1
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$ROOT/vendor/onnxruntime/libonnxruntime.so.1.31.1}
WORK=$ROOT/.local/fuzz

smoke_dirs=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in $(jobs -p); do kill -TERM "$pid" 2>/dev/null || true; done
  [ ${#smoke_dirs[@]} -eq 0 ] || rm -rf "${smoke_dirs[@]}"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

ensure_cargo_fuzz() {
  if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    echo "==> cargo install cargo-fuzz@$CARGO_FUZZ_VERSION" >&2
    cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
  fi
}

seed() { # TARGET [DIR]: the corpus directory (default the kept one), seeded on first use
  local target=$1 dir=${2:-$WORK/corpus/$1}
  if [ ! -d "$dir" ] || [ -z "$(ls -A "$dir")" ]; then
    mkdir -p "$dir"
    case $target in
      decode_preprocess)
        find tests/fixtures/parity/images tests/fixtures/bad -type f -size -2M -exec cp {} "$dir/" \; ;;
      events)
        cp tests/events/*.json "$dir/"
        # The SQS bodies alone, as parse_notification sees them.
        python3 - "$dir" tests/events/sqs-batch.json <<'PY'
import json, sys
for i, record in enumerate(json.load(open(sys.argv[2]))["Records"]):
    open(f"{sys.argv[1]}/sqs-body-{i}.json", "w").write(record["body"])
PY
        ;;
    esac
    [ -d "fuzz/seeds/$target" ] && cp fuzz/seeds/"$target"/* "$dir/"
    [ -d "fuzz/regressions/$target" ] && cp fuzz/regressions/"$target"/* "$dir/" 2>/dev/null || true
  fi
  echo "$dir"
}

# Long runs: optimised, with AddressSanitizer. The smoke in `make test`: unoptimised and
# without a sanitizer (debug assertions and overflow checks on), because a fresh clone must
# build the whole dependency tree again with coverage instrumentation and that build is most
# of the smoke's time (FUZZ_BUILD overrides: "release" or "dev").
BUILD_FLAGS=(--release)
build() {
  ensure_cargo_fuzz
  echo "==> cargo fuzz build ${BUILD_FLAGS[*]}: every target" >&2
  (cd fuzz && cargo fuzz build "${BUILD_FLAGS[@]}" >&2)
}

fuzz_one() { # TARGET SECONDS [CORPUS]
  local target=$1 seconds=$2 corpus log
  corpus=$(seed "$target" "${3:-}")
  mkdir -p "$WORK/logs" "fuzz/artifacts/$target"
  log=$WORK/logs/$target-$(date +%Y%m%d-%H%M%S).log
  echo "==> fuzz $target for ${seconds}s (corpus $corpus, log $log)" >&2
  local rc=0
  (cd fuzz && cargo fuzz run "${BUILD_FLAGS[@]}" "$target" "$corpus" -- \
    -max_total_time="$seconds" -rss_limit_mb="${FUZZ_RSS_LIMIT_MB:-2048}" -timeout="${FUZZ_TIMEOUT:-10}" \
    -print_final_stats=1 -artifact_prefix="$ROOT/fuzz/artifacts/$target/") > "$log" 2>&1 || rc=$?
  # The last status line (#execs, cov, ft, corp) and the final stats, for docs/fuzzing.md.
  local status
  status=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  local execs
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
  echo "$target: ${seconds}s, ${execs:-?} executions, last: ${status:-none}" | tee -a "$WORK/logs/summary.txt" >&2
  if [ "$rc" -ne 0 ]; then
    echo "FAILED: $target (exit $rc), last lines of $log:" >&2
    tail -n 30 "$log" >&2
    return 1
  fi
}

regressions() {
  local target status=0 dir
  for target in "${TARGETS[@]}"; do
    dir=fuzz/regressions/$target
    [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ] || continue
    echo "==> $target: replaying $(ls "$dir" | wc -l) saved findings" >&2
    (cd fuzz && cargo fuzz run "${BUILD_FLAGS[@]}" "$target" "$ROOT/$dir"/* -- -runs=1 \
      -rss_limit_mb="${FUZZ_RSS_LIMIT_MB:-2048}" -timeout="${FUZZ_TIMEOUT:-10}" >&2) || status=1
  done
  return $status
}

command=${1:-smoke}
shift || true
case $command in
  list) printf '%s\n' "${TARGETS[@]}" ;;
  regressions) build && regressions ;;
  smoke | run)
    if [ "$command" = run ]; then
      seconds=${1:?usage: scripts/fuzz.sh run SECONDS [TARGET...]}
      shift
    else
      seconds=${FUZZ_SMOKE_SECONDS:-15}
      BUILD_FLAGS=(--dev --sanitizer none)
    fi
    case ${FUZZ_BUILD:-} in
      release) BUILD_FLAGS=(--release) ;;
      dev) BUILD_FLAGS=(--dev --sanitizer none) ;;
    esac
    targets=("$@")
    [ ${#targets[@]} -gt 0 ] || targets=("${TARGETS[@]}")
    build
    regressions
    failed=0 running=0
    jobs=${FUZZ_JOBS:-1}
    for target in "${targets[@]}"; do
      # The smoke starts from the seeds alone: replaying a corpus grown over hours would take
      # longer than the smoke itself (libFuzzer runs every input once before it starts).
      corpus=
      [ "$command" = smoke ] && corpus=$(mktemp -d "${TMPDIR:-/tmp}/clipsearch-fuzz-$target.XXXXXX") && smoke_dirs+=("$corpus")
      fuzz_one "$target" "$seconds" "$corpus" &
      running=$((running + 1))
      if [ "$running" -ge "$jobs" ]; then
        wait -n || failed=1 # the first to finish frees its core for the next target
        running=$((running - 1))
      fi
    done
    while [ "$running" -gt 0 ]; do
      wait -n || failed=1
      running=$((running - 1))
    done
    rm -rf "${smoke_dirs[@]}"
    exit $failed
    ;;
  *) echo "usage: scripts/fuzz.sh smoke|run SECONDS|regressions|list [TARGET...]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Runs every test against real components: ONNX Runtime, a local Milvus, the S3/SQS emulator
# (moto) and the Lambda emulator (cargo lambda watch), each started here on its own ports so a
# user's services are left alone, and stopped again whatever happens (failure, Ctrl-C).
#
#   scripts/test.sh                      everything: lint, services, all tests, packaging
#   scripts/test.sh ARGS...              services, then only `cargo test --release ARGS...`
#                                        e.g. scripts/test.sh -p clipsearch-cli --test end_to_end
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$ROOT/vendor/onnxruntime/libonnxruntime.so.1.31.1}
export CLIPSEARCH_PYTHON=$ROOT/.venv/bin/python
export CLIPSEARCH_MODEL_DIR=$ROOT/tests/fixtures/tiny-clip
# Test instances, 10+ ports away from the defaults (each Milvus uses its port and the next 8).
export MILVUS_PORT=${TEST_MILVUS_PORT:-19580}
export MILVUS_HEALTH_PORT=${TEST_MILVUS_HEALTH_PORT:-9097}
export MILVUS_ETCD_PORT=${TEST_MILVUS_ETCD_PORT:-2579}
export MILVUS_URI="http://127.0.0.1:${MILVUS_PORT}"
export MILVUS_COLLECTION=clipsearch_test_functions
export MOTO_PORT=${TEST_MOTO_PORT:-5077}
export CLIPSEARCH_S3_ENDPOINT="http://127.0.0.1:${MOTO_PORT}"
export CLIPSEARCH_BUCKET=clipsearch-test-functions
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export LAMBDA_PORT=${TEST_LAMBDA_PORT:-9077}
# A second emulator whose functions' Milvus accepts connections and never answers
# (scripts/lib/silent-server.py): the deadline path, through the real runtime and emulator.
# The emulator sends no real deadline, so CLIPSEARCH_INVOCATION_TIMEOUT_SECS plays the
# function's timeout there (6 s, well under the Milvus client's own 10 s + 30 s timeouts).
export LAMBDA_MILVUS_DOWN_PORT=${TEST_LAMBDA_MILVUS_DOWN_PORT:-9078}
export SILENT_MILVUS_PORT=${TEST_SILENT_MILVUS_PORT:-19599}
export LAMBDA_MILVUS_DOWN_TIMEOUT_SECS=6
# Milvus Lite, the newest engine reachable here: the store's tests run on it too (docs/engines.md).
export MILVUS_LITE_PORT=${TEST_MILVUS_LITE_PORT:-19690}
export RUST_LOG=${RUST_LOG:-info}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$rc" -ne 0 ]; then
    for log in .local/lambda/"$LAMBDA_PORT"/lambda.log .local/lambda/"$LAMBDA_MILVUS_DOWN_PORT"/lambda.log; do
      [ -f "$log" ] && { echo "==> last lines of $log"; tail -n 40 "$log" | cut -c1-400; }
    done
  fi
  bash scripts/lambda.sh down || true
  LAMBDA_PORT=$LAMBDA_MILVUS_DOWN_PORT bash scripts/lambda.sh down || true
  [ -n "${silent_pid:-}" ] && kill -TERM "$silent_pid" 2>/dev/null || true
  bash scripts/moto.sh down || true
  bash scripts/milvus.sh down || true
  bash scripts/milvus-lite.sh down || true
  exit $rc
}
trap cleanup EXIT INT TERM
mkdir -p .local
# Each step says when it started, so a slow run shows where its time went.
step() { echo "==> $* (at $((SECONDS / 60)) min $((SECONDS % 60)) s)"; }

if [ $# -eq 0 ]; then
step "lint"
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets --quiet -- -D warnings
# cfn-lint and checkov on template.yaml, its zip/image/all-options variants and the Dockerfile.
.venv/bin/python scripts/check-iac.py
.venv/bin/python scripts/local-aws.py --check-template template.yaml
fi

step "services: Milvus :$MILVUS_PORT, moto :$MOTO_PORT, Lambda emulator :$LAMBDA_PORT"
bash scripts/milvus.sh up --fresh
bash scripts/moto.sh up
# The search function answers text queries with the multilingual tower (its English queries
# find the same images as tiny-clip's own tower; tests/multilingual.rs): the page test types
# Chinese. Only the emulator gets it: the tests' own processes use tiny-clip's tower.
CLIPSEARCH_TEXT_MODEL_DIR=$ROOT/tests/fixtures/tiny-multilingual bash scripts/lambda.sh up
python3 scripts/lib/silent-server.py "$SILENT_MILVUS_PORT" &
silent_pid=$!
LAMBDA_PORT=$LAMBDA_MILVUS_DOWN_PORT MILVUS_URI=http://127.0.0.1:$SILENT_MILVUS_PORT \
  CLIPSEARCH_INVOCATION_TIMEOUT_SECS=$LAMBDA_MILVUS_DOWN_TIMEOUT_SECS bash scripts/lambda.sh up
# Start both function processes now: the emulator builds and starts a function on its first
# invocation, which can take minutes on a small machine, longer than a browser's page timeout.
curl -fsS --max-time 900 -o /dev/null "http://127.0.0.1:$LAMBDA_PORT/lambda-url/search/health" ||
  echo "warm-up: search /health did not answer 200 (tests will say more)"
curl -fsS --max-time 900 -o /dev/null -X POST --data-binary @tests/events/s3-test-event.json \
  "http://127.0.0.1:$LAMBDA_PORT/2015-03-31/functions/ingest/invocations" ||
  echo "warm-up: ingest did not answer (tests will say more)"
# 503 is the expected answer there: no -f.
curl -sS --max-time 900 -o /dev/null "http://127.0.0.1:$LAMBDA_MILVUS_DOWN_PORT/lambda-url/search/health" ||
  echo "warm-up: the Milvus-down search function did not answer (tests will say more)"
curl -sS --max-time 900 -o /dev/null -X POST --data-binary @tests/events/s3-test-event.json \
  "http://127.0.0.1:$LAMBDA_MILVUS_DOWN_PORT/2015-03-31/functions/ingest/invocations" ||
  echo "warm-up: the Milvus-down ingest function did not answer (tests will say more)"

step "headless Chromium and playwright-core for the search page test"
bash scripts/setup-browser.sh

if [ $# -gt 0 ]; then
  step "cargo test --release $*"
  cargo test --release "$@"
  exit 0
fi

step "cargo test"
# A bound on the whole run, so that a call that never returns fails with the logs above
# instead of running into CI's own limit with nothing said (TEST_TIMEOUT_SECS, default 50 min).
timeout -s TERM "${TEST_TIMEOUT_SECS:-3000}" cargo test --release --workspace --no-fail-fast 2>&1 | tee .local/test.log

step "the store's tests again, on Milvus Lite $(.venv-milvus-lite/bin/pip show milvus-lite 2>/dev/null | sed -n 's/^Version: //p') (docs/engines.md)"
bash scripts/milvus-lite.sh up --fresh
# --workspace: the same feature set as the run above, so nothing is rebuilt.
MILVUS_URI=http://127.0.0.1:$MILVUS_LITE_PORT cargo test --release --workspace --test store 2>&1 | tee -a .local/test.log
bash scripts/milvus-lite.sh down

step "Lambda packages (cargo lambda build) and their glibc floor"
bash scripts/package-lambda.sh x86_64

step "fuzz smoke: every saved finding, then each target for ${FUZZ_SMOKE_SECONDS:-15}s (fuzz/, scripts/fuzz.sh)"
bash scripts/fuzz.sh smoke
step "all passed"

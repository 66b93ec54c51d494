#!/usr/bin/env bash
# Runs every test against real components: ONNX Runtime, a local Milvus started here on its
# own port (TEST_MILVUS_PORT), and stops whatever it started, even on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/vendor/onnxruntime/libonnxruntime.so.1.31.1}
export MILVUS_PORT=${TEST_MILVUS_PORT:-19540}
export MILVUS_URI="http://127.0.0.1:${MILVUS_PORT}"
export CLIPSEARCH_PYTHON=$PWD/.venv/bin/python

cleanup() {
  local rc=$?
  bash scripts/milvus.sh down || true
  exit $rc
}
trap cleanup EXIT INT TERM

echo "==> lint"
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets --quiet -- -D warnings

echo "==> local Milvus on port $MILVUS_PORT"
bash scripts/milvus.sh up

mkdir -p .local
echo "==> cargo test"
cargo test --release --workspace --no-fail-fast 2>&1 | tee .local/test.log

#!/usr/bin/env bash
# Idempotent set-up from a fresh machine: Python venv (pinned), ONNX Runtime library (pinned
# wheel hash), release build. Each step is skipped when its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
ORT_DIR=vendor/onnxruntime
ORT_LIB=libonnxruntime.so.1.31.1

step() { printf '\n==> %s\n' "$*"; }

# --- System packages: libjpeg-turbo is built from source (cmake) with its SIMD code (nasm); zip
# and unzip build and check the model layer (scripts/package-model-layer.sh) -----------------
missing=()
for tool in cmake nasm zip unzip; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- Python venvs, each from its pinned requirements, rebuilt when they change ----------------
# venv DIR PROBE REQUIREMENTS [CONSTRAINTS]: PROBE is a file the finished venv has.
venv() {
  local dir=$1 probe=$2 requirements=$3 constraints=${4:-} stamp want
  stamp="$dir/.requirements.sha256"
  want=$(cat "$requirements" ${constraints:+"$constraints"} | sha256sum | cut -d' ' -f1)
  if [ -x "$dir/$probe" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    step "venv $dir up to date"
    return
  fi
  step "venv $dir ($requirements)"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" ${constraints:+-c "$constraints"}
  echo "$want" > "$stamp"
}
# The reference pipeline, milvus-server, moto, cargo-lambda, cfn-lint.
venv "$VENV" bin/python tools/requirements.txt
# checkov, schemathesis (tests/api_schema.rs) and Milvus Lite (scripts/milvus-lite.sh) in venvs
# of their own: their pins would move the main venv's libraries.
venv .venv-checkov bin/checkov tools/requirements-checkov.txt tools/constraints-checkov.txt
venv .venv-schemathesis bin/schemathesis tools/requirements-schemathesis.txt
venv .venv-milvus-lite bin/milvus-lite tools/requirements-milvus-lite.txt

# --- ONNX Runtime shared library from the pinned wheel -----------------------------------------
if [ ! -f "$ORT_DIR/$ORT_LIB" ]; then
  step "ONNX Runtime $ORT_LIB from the onnxruntime==1.31.1 wheel (hash-pinned)"
  bash scripts/fetch-onnxruntime.sh x86_64 "$ORT_DIR"
else
  step "ONNX Runtime library present ($ORT_DIR/$ORT_LIB)"
fi

# --- Rust build -------------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  step "cargo build --release"
  cargo build --release --workspace --quiet
fi

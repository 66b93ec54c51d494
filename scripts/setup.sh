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

# --- Python tools: reference pipeline, milvus-server, moto, cargo-lambda, cfn-lint -------------
stamp="$VENV/.requirements.sha256"
want=$(sha256sum tools/requirements.txt | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "Python venv $VENV (tools/requirements.txt)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tools/requirements.txt
  echo "$want" > "$stamp"
else
  step "Python venv up to date"
fi

# --- checkov, in its own venv (its pins would move the main venv's libraries) ----------------
stamp=.venv-checkov/.requirements.sha256
want=$(cat tools/requirements-checkov.txt tools/constraints-checkov.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv-checkov/bin/checkov ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "checkov venv .venv-checkov (tools/requirements-checkov.txt)"
  "$PYTHON" -m venv .venv-checkov
  .venv-checkov/bin/pip install --quiet --disable-pip-version-check \
    -r tools/requirements-checkov.txt -c tools/constraints-checkov.txt
  echo "$want" > "$stamp"
else
  step "checkov venv up to date"
fi

# --- schemathesis, in its own venv too (tests/api_schema.rs) -----------------------------------
stamp=.venv-schemathesis/.requirements.sha256
want=$(sha256sum tools/requirements-schemathesis.txt | cut -d' ' -f1)
if [ ! -x .venv-schemathesis/bin/schemathesis ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "schemathesis venv .venv-schemathesis (tools/requirements-schemathesis.txt)"
  "$PYTHON" -m venv .venv-schemathesis
  .venv-schemathesis/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-schemathesis.txt
  echo "$want" > "$stamp"
else
  step "schemathesis venv up to date"
fi

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

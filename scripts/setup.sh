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

# --- ONNX Runtime shared library from the pinned wheel -----------------------------------------
if [ ! -f "$ORT_DIR/$ORT_LIB" ]; then
  step "ONNX Runtime $ORT_LIB from the onnxruntime==1.31.1 wheel (hash-pinned)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux_2_28_x86_64 --require-hashes \
    -r tools/onnxruntime.lock -d "$tmp"
  mkdir -p "$ORT_DIR"
  "$VENV/bin/python" - "$tmp" "$ORT_DIR" "$ORT_LIB" <<'PY'
import glob, os, sys, zipfile
tmp, out, lib = sys.argv[1:4]
(wheel,) = glob.glob(os.path.join(tmp, "onnxruntime-*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in (lib, "libonnxruntime_providers_shared.so"):
        member = "onnxruntime/capi/" + name
        with z.open(member) as src, open(os.path.join(out, name), "wb") as dst:
            dst.write(src.read())
print("extracted", lib, "from", os.path.basename(wheel))
PY
else
  step "ONNX Runtime library present ($ORT_DIR/$ORT_LIB)"
fi

# --- Rust build -------------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  step "cargo build --release"
  cargo build --release --workspace --quiet
fi

#!/usr/bin/env bash
# Extracts libonnxruntime.so.1.31.1 from the hash-pinned onnxruntime==1.31.1 wheel.
# Usage: scripts/fetch-onnxruntime.sh ARCH DEST_DIR   (ARCH: x86_64 | aarch64 | arm64)
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:?arch}; dest=${2:?destination directory}
[ "$arch" = arm64 ] && arch=aarch64
lib=libonnxruntime.so.1.31.1
if [ -f "$dest/$lib" ]; then exit 0; fi
pip=.venv/bin/pip; [ -x "$pip" ] || pip="python3 -m pip"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
$pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.11 --platform "manylinux_2_28_${arch}" --require-hashes \
  -r tools/onnxruntime.lock -d "$tmp"
mkdir -p "$dest"
python3 - "$tmp" "$dest" "$lib" <<'PY'
import glob, os, sys, zipfile
tmp, out, lib = sys.argv[1:4]
(wheel,) = glob.glob(os.path.join(tmp, "onnxruntime-*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in (lib, "libonnxruntime_providers_shared.so"):
        with z.open("onnxruntime/capi/" + name) as src, open(os.path.join(out, name), "wb") as dst:
            dst.write(src.read())
print("extracted", lib, "from", os.path.basename(wheel), "into", out)
PY

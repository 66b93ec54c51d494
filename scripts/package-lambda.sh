#!/usr/bin/env bash
# Builds what a deployment ships: both functions as zips (cargo lambda, Amazon Linux 2023
# compatible; also unpacked as target/lambda/<fn>/bootstrap for the Dockerfile) and the ONNX
# Runtime layer for the architecture; then checks that the binaries need no glibc newer than
# Amazon Linux 2023's (2.34), and writes the prebuilt-zip and image templates (target/sam/).
# Usage: scripts/package-lambda.sh [x86_64|arm64]   (arm64 needs the rustup target aarch64-unknown-linux-gnu)
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-x86_64}
export PATH="$PWD/.venv/bin:$PATH"   # cargo-lambda and its zig

layer=target/lambda-layer/onnxruntime/lib
echo "==> ONNX Runtime layer ($arch) in $layer"
rm -rf "$layer" && bash scripts/fetch-onnxruntime.sh "$arch" "$layer"

flags=(--release --output-format zip)
[ "$arch" = arm64 ] && flags+=(--arm64)
echo "==> cargo lambda build ${flags[*]}"
# --lambda-dir pins where the zips go, whatever CARGO_TARGET_DIR says.
cargo lambda build "${flags[@]}" --lambda-dir target/lambda --bin ingest --bin search

max_allowed=2.34
status=0
for fn in ingest search; do
  zip=target/lambda/$fn/bootstrap.zip
  [ -f "$zip" ] || { echo "missing $zip"; exit 1; }
  bin=target/lambda/$fn/bootstrap
  python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("bootstrap"))' "$zip" > "$bin"
  needed=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
  newest=$(printf '%s\n%s\n' "$needed" "$max_allowed" | sort -V | tail -n 1)
  chmod 0755 "$bin"
  size=$(du -h "$zip" | cut -f1)
  if [ "$newest" = "$max_allowed" ]; then
    echo "$fn: $zip ($size), needs glibc $needed <= $max_allowed: ok"
  else
    echo "$fn: needs glibc $needed, newer than Amazon Linux 2023's $max_allowed"; status=1
  fi
done
.venv/bin/python scripts/sam-variants.py template.yaml target/sam
exit $status

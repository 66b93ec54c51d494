#!/usr/bin/env bash
# Builds the model layer of deployment option C (README "Deploying to AWS"): the model directory
# as model/ in a zip, which Lambda unpacks to /opt/model, so a cold start copies nothing from S3.
# The model is first written in its fast-loading form (`clipsearch optimize-model`; a directory
# that already is one is taken as it is). Lambda allows 250 MB unzipped for a function and all
# its layers together: the model, the ONNX Runtime layer and the larger bootstrap must fit, so
# this refuses a model that would not (fp32 ViT-B/32, ~600 MB, does not; int8, ~160 MB, does).
# Usage: scripts/package-model-layer.sh MODEL_DIR [OUT_ZIP]   (default target/lambda-model-layer/model.zip)
# Env: CLIPSEARCH_LAYER_LIMIT_BYTES (default 262144000, Lambda's limit; lower it to keep room).
set -euo pipefail
cd "$(dirname "$0")/.."
source=${1:?usage: scripts/package-model-layer.sh MODEL_DIR [OUT_ZIP]}
out=$(realpath -m "${2:-target/lambda-model-layer/model.zip}")
limit=${CLIPSEARCH_LAYER_LIMIT_BYTES:-262144000}
[ -d "$source" ] || { echo "error: $source is not a directory" >&2; exit 2; }

staging=$(mktemp -d "${TMPDIR:-/tmp}/clipsearch-model-layer.XXXXXX")
cleanup() { rm -rf "$staging"; }
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

if [ -f "$source/optimized.json" ]; then
  echo "==> $source is already optimised: copying it"
  mkdir -p "$staging/model"
  find "$source" -maxdepth 1 -type f ! -name '.*' ! -name SHA256SUMS -exec cp {} "$staging/model/" \;
else
  clipsearch=${CLIPSEARCH_BIN:-${CARGO_TARGET_DIR:-target}/release/clipsearch}
  if [ -z "${CLIPSEARCH_BIN:-}" ]; then
    echo "==> cargo build --release -p clipsearch-cli"
    cargo build --release --quiet -p clipsearch-cli
  fi
  echo "==> clipsearch optimize-model $source"
  "$clipsearch" optimize-model "$source" "$staging/model" >/dev/null
fi

bytes() { du -sb "$1" | cut -f1; }
unzipped() { python3 -c 'import sys, zipfile; print(sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist()))' "$1"; }
model_bytes=$(bytes "$staging/model")
ort_bytes=0
for lib in target/lambda-layer/onnxruntime/lib/libonnxruntime.so.* vendor/onnxruntime/libonnxruntime.so.*; do
  [ -f "$lib" ] && { ort_bytes=$(bytes "$lib"); break; }
done
bootstrap_bytes=0
for fn in ingest search; do
  zip=target/lambda/$fn/bootstrap.zip
  [ -f "$zip" ] || continue
  size=$(unzipped "$zip")
  if [ "$size" -gt "$bootstrap_bytes" ]; then bootstrap_bytes=$size; fi
done
# Without built zips, a margin for the bootstrap (today's are about 26 MB unzipped).
[ "$bootstrap_bytes" -gt 0 ] || bootstrap_bytes=$((40 * 1024 * 1024))
total=$((model_bytes + ort_bytes + bootstrap_bytes))
mb() { echo "$(( $1 / 1000000 )) MB"; }
echo "unzipped: model $(mb "$model_bytes") + ONNX Runtime $(mb "$ort_bytes") + bootstrap $(mb "$bootstrap_bytes") = $(mb "$total") (limit $(mb "$limit"))"
if [ "$total" -gt "$limit" ]; then
  echo "error: too large for a layer: quantize it first (tools/quantize_model.py), or deploy option A or B" >&2
  exit 1
fi

mkdir -p "$(dirname "$out")"
rm -f "$out"
(cd "$staging" && zip -qr -X "$out.tmp" model)
mv "$out.tmp" "$out"
echo "wrote $out ($(du -h "$out" | cut -f1))"
cat <<EOF
Publish it (a layer over 50 MB goes through S3), then deploy with ModelLayerArn=<its LayerVersionArn>:
  aws s3 cp $out s3://YOUR-BUCKET/layers/clipsearch-model.zip
  aws lambda publish-layer-version --layer-name clipsearch-model \\
    --content S3Bucket=YOUR-BUCKET,S3Key=layers/clipsearch-model.zip --compatible-runtimes provided.al2023
EOF

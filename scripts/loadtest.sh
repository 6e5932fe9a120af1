#!/usr/bin/env bash
# Load test and memory soak of `faceprint serve` on loopback (BENCHMARKS.md "HTTP service").
#
#   scripts/loadtest.sh load   # 32 clients × 60 s, mixed verify/identify; batching on, then off
#   scripts/loadtest.sh soak   # 10,000 sequential verify requests, RSS sampled every 500
#
# Bounded: each run stops after its time or count; the servers it starts are stopped with SIGTERM.
# Needs the models (`faceprint models install`) and ../shared/data (LFW photos).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-load}
data=${DATA:-../shared/data}
port=${PORT:-18431}
clients=${CLIENTS:-32}
seconds=${SECONDS_PER_RUN:-60}
requests=${REQUESTS:-10000}
cargo build --release --locked --bin faceprint --example loadtest >&2
bin=target/release/faceprint
client=target/release/examples/loadtest
out=$(mktemp -d)

pid=
run_server() { # $1 = batching true|false; sets $pid
  "$bin" serve --bind "127.0.0.1:$port" --batching "$1" --gallery "$out/gallery-$1" --create-gallery --log-format json >/dev/null 2>"$out/server-$1.log" &
  pid=$!
  for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; then return; fi
    sleep 0.1
  done
  echo "server did not become ready" >&2; kill -TERM "$pid"; exit 1
}

stop_server() {
  kill -TERM "$pid"; wait "$pid" || true
}

case "$mode" in
  load)
    for batching in true false; do
      run_server "$batching"
      echo "== batching=$batching" >&2
      "$client" load --url "http://127.0.0.1:$port" --data "$data" --clients "$clients" --seconds "$seconds" --pid "$pid" \
        | sed "s/^{/{\"batching\":$batching,/"
      stop_server
    done
    ;;
  soak)
    run_server true
    "$client" soak --url "http://127.0.0.1:$port" --data "$data" --requests "$requests" --pid "$pid"
    stop_server
    ;;
  *) echo "usage: $0 load|soak" >&2; exit 2 ;;
esac
rm -rf "$out"

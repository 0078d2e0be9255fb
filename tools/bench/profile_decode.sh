#!/usr/bin/env bash
# Where a decode step's time goes: runs the `speed` example's decode at batch BATCH (default 8)
# after a ~300-token prompt and records it with `perf record -g` from the first timed step on
# (the prompt is not in the profile), then prints the hottest symbols.
#   tools/bench/profile_decode.sh MODEL.gguf [OUT.data]
# Environment: BATCH, RAYON_NUM_THREADS (default 2). Needs `perf` (linux-perf); run it on an
# otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
gguf=${1:?usage: profile_decode.sh MODEL.gguf [OUT.data]}
data=${2:-target/profile_decode.data}
cargo build --release -p sqlora-model --example speed
err=$(mktemp)
SPEED_PROFILE_BATCH=${BATCH:-8} RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2} \
  target/release/examples/speed "$gguf" 2> "$err" &
pid=$!
until grep -q prefilled "$err"; do
  kill -0 "$pid" 2>/dev/null || { cat "$err"; exit 1; }
  sleep 0.2
done
perf record -F 999 -g -p "$pid" -o "$data" 2>/dev/null &
wait "$pid"
sleep 1
perf report -i "$data" --no-children --sort symbol 2>/dev/null | grep -E '^ +[0-9.]+%' | head -25

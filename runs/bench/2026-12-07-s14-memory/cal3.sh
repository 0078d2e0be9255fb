#!/bin/bash
cd /work/main
export RAYON_NUM_THREADS=2
Q=~/.cache/sqlora/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
run() { echo "== $*"; env $4 CHECKPOINTING=$1 target/release/examples/train_bench $2 $5 $3 2 /tmp/tc/rows_cal.json 1536 2>&1 | tail -n1 | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print({k:r[k] for k in ["checkpointing","rows","computed_tokens_per_step","tokens_per_step","shared_prefix_len","answer_tokens_per_step","rss_before_steps_mb","step_peak_rss_mb","estimated_step_mb","step_seconds"]}, "measured", r["step_peak_rss_mb"]-r["rss_before_steps_mb"])'; }
run 1 $Q 8 X=1 hr
run 0 $Q 2 X=1 hr

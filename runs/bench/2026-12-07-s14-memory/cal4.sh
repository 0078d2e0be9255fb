#!/bin/bash
cd /work/main
export RAYON_NUM_THREADS=2
S=~/.cache/sqlora/models/SmolLM2-135M-Instruct.Q4_1.gguf
Q=~/.cache/sqlora/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
run() { echo "== $*"; CHECKPOINTING=$1 target/release/examples/train_bench $2 retail $3 2 /tmp/tc/rows_cal.json 1024 2>&1 | tail -n1 | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); m=r["step_peak_rss_mb"]-r["rss_before_steps_mb"]; print({k:r[k] for k in ["checkpointing","rows","computed_tokens_per_step","rss_before_steps_mb","step_peak_rss_mb","estimated_step_mb","step_seconds"]}, "measured", m, "ratio %.2f" % (r["estimated_step_mb"]/m))'; }
run 1 $S 4; run 0 $S 4; run 1 $S 16; run 0 $S 16
run 1 $Q 4; run 0 $Q 4

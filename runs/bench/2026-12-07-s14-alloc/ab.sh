#!/bin/bash
cd /work/main
M=~/.cache/sqlora/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
export RAYON_NUM_THREADS=2 CHECKPOINTING=1
for i in 1 2; do
  echo "base $i $(cut -d' ' -f1 /proc/loadavg)"; /usr/bin/time -f "maxrss %M KB" target/release/examples/train_bench $M retail 4 4 /tmp/tc/rows.json 1024 2>&1 | tail -n 2
  echo "nommap $i $(cut -d' ' -f1 /proc/loadavg)"; GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736:glibc.malloc.top_pad=268435456 /usr/bin/time -f "maxrss %M KB" target/release/examples/train_bench $M retail 4 4 /tmp/tc/rows.json 1024 2>&1 | tail -n 2
done

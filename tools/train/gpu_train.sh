#!/usr/bin/env bash
# One domain's LoRA training on a CUDA GPU, timed against the CPU on the same rows: the short
# device check of issue 14 (item 6), for a machine with an NVIDIA GPU.
#
# Usage: MODEL=/path/to/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf tools/train/gpu_train.sh [DOMAIN]
#
# Needs: a Rust toolchain; the CUDA compiler and libraries (a CUDA toolkit, or the PyPI
# packages named in README "NVIDIA GPUs"; set CUDA_ROOT to their folder); the model file
# (MODEL: a GGUF path or a Hugging Face folder; nothing is downloaded). Builds
# `--release --features cuda` when target/release/sqlora-cuda is missing, then trains DOMAIN
# (default retail) for STEPS steps (default 20) on cuda:0 and for CPU_STEPS steps (default 3)
# on the CPU, with the same configuration, and prints the median tokens/s of each (the
# trainer's metrics.jsonl), the ratio, the loss of the first and last GPU steps, and the GPU's
# name. Everything goes under OUT (default target/gpu_train); nothing in the repository changes.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${MODEL:?set MODEL to the base model (a GGUF file or a Hugging Face folder)}"
domain=${1:-retail}
steps=${STEPS:-20}
cpu_steps=${CPU_STEPS:-3}
out=${OUT:-target/gpu_train}
bin=target/release/sqlora-cuda
mkdir -p "$out"

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader \
  | tee "$out/gpu.txt" || { echo "no nvidia-smi: is there a GPU here?" >&2; exit 1; }

if [ ! -x "$bin" ]; then
  if [ -n "${CUDA_ROOT:-}" ]; then
    export PATH="$CUDA_ROOT/bin:$PATH" CUDA_PATH="$CUDA_ROOT"
    export LIBRARY_PATH="$CUDA_ROOT/lib:$CUDA_ROOT/lib64${LIBRARY_PATH:+:$LIBRARY_PATH}"
    export LD_LIBRARY_PATH="$CUDA_ROOT/lib:$CUDA_ROOT/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  command -v nvcc >/dev/null || { echo "no nvcc: install a CUDA toolkit or set CUDA_ROOT" >&2; exit 1; }
  # The compute capability of this GPU for candle's kernels (e.g. 9.0 -> 90).
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
  echo "== building with CUDA (compute capability $cap)"
  CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-$cap} cargo build --release --features cuda -p sqlora \
    --target-dir target/cuda
  cp target/cuda/release/sqlora "$bin"
fi

run() { # device steps dir
  rm -rf "$out/$3"
  "$bin" train --domain "$domain" --model "$MODEL" --device "$1" --max-steps "$2" \
    --no-test --dev-questions 0 --out "$out/$3/adapter" --run-dir "$out/$3/run" \
    > "$out/$3.log" 2>&1 || { echo "training on $1 failed, see $out/$3.log" >&2; tail -5 "$out/$3.log" >&2; exit 1; }
}
echo "== $domain on cuda:0, $steps steps"
run cuda:0 "$steps" gpu
echo "== $domain on the CPU, $cpu_steps steps"
run cpu "$cpu_steps" cpu

python3 - "$out" <<'EOF'
import json, statistics, sys
out = sys.argv[1]
def read(name):
    rows = [json.loads(l) for l in open(f"{out}/{name}/run/metrics.jsonl") if l.strip()]
    rows = [r for r in rows if "tokens_per_s" in r]
    # The first step includes warm-up (kernel compilation, caches): leave it out when we can.
    timed = rows[1:] if len(rows) > 1 else rows
    return rows, statistics.median(r["tokens_per_s"] for r in timed)
gpu, g = read("gpu")
cpu, c = read("cpu")
print(f"gpu: {open(out + '/gpu.txt').read().strip()}")
print(f"tokens/s (median over steps 2..): cuda {g:.0f}, cpu {c:.0f}, ratio {g / c:.1f}x")
print(f"loss on cuda: step 1 {gpu[0]['loss']:.3f} -> step {gpu[-1]['step']} {gpu[-1]['loss']:.3f}")
EOF

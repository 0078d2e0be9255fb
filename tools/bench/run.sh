#!/usr/bin/env bash
# Runs sqlora's generation benchmarks and the peers back to back in one session, on the same
# GGUF and 2 threads, and writes each engine's JSON into OUT (default target/bench/).
#   tools/bench/run.sh /path/to/SmolLM2-135M-Instruct.Q4_1.gguf [OUT]
# Peers need their venvs (see tools/reference/README.md): LLAMA_PY (llama-cpp-python) and
# REF_PY (torch + transformers + peft). Run on an otherwise idle machine: llama.cpp's threads
# spin while waiting and collapse under contention.
set -euo pipefail
gguf=${1:?usage: run.sh MODEL.gguf [OUT]}
out=${2:-target/bench}
mkdir -p "$out"
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
cargo build --release -p sqlora
./target/release/sqlora bench generate --model "$gguf" --lora --json | tee "$out/sqlora.json"
"${LLAMA_PY:-/work/venvs/llama/bin/python}" tools/bench/llamacpp_bench.py --gguf "$gguf" | tee "$out/llamacpp.json"
"${REF_PY:-/work/venvs/ref/bin/python}" tools/bench/peft_bench.py --gguf "$gguf" | tee "$out/peft.json"

#!/usr/bin/env bash
# Runs sqlora's generation benchmarks and the peers back to back in one session, on the same
# GGUF and 2 threads, and writes each engine's JSON into OUT (default target/bench/<model>/).
#   tools/bench/run.sh MODEL [OUT]      MODEL: a name of `sqlora model list` or a .gguf path
# Peers need their venvs (see tools/reference/README.md): LLAMA_PY (llama-cpp-python) and
# REF_PY (torch + transformers + peft; skipped with PEFT=0, e.g. for the Qwen models, whose
# PEFT peer is not part of the generation benchmark). LORA=0 skips sqlora's LoRA modes.
# Run on an otherwise idle machine: llama.cpp's threads spin while waiting and collapse under
# contention. REPS (default 3) repetitions after a warm-up; CONSTRAIN (default retail) the
# database whose schema constrains the constrained decode.
set -euo pipefail
model=${1:?usage: run.sh MODEL [OUT]}
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
cargo build --release -p sqlora
sqlora=./target/release/sqlora
if [ -f "$model" ]; then gguf=$model; else gguf=$("$sqlora" model fetch "$model" | tail -1); fi
name=$(basename "$gguf" .gguf)
out=${2:-target/bench/$name}
mkdir -p "$out"
lora=()
[ "${LORA:-1}" = 0 ] || lora=(--lora)
# Decode constrained to SQL over a bundled schema, beside the free decode (issue 13's cost).
lora+=(--constrain "${CONSTRAIN:-retail}")
"$sqlora" bench generate --model "$gguf" --reps "${REPS:-3}" "${lora[@]}" --json | tee "$out/sqlora.json"
"${LLAMA_PY:-/work/venvs/llama/bin/python}" tools/bench/llamacpp_bench.py --gguf "$gguf" --repeats "${REPS:-3}" | tee "$out/llamacpp.json"
if [ "${PEFT:-1}" != 0 ]; then
  "${REF_PY:-/work/venvs/ref/bin/python}" tools/bench/peft_bench.py --gguf "$gguf" | tee "$out/peft.json"
fi
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
s, l = (json.load(open(f"{out}/{n}.json")) for n in ("sqlora", "llamacpp"))
mine = {}
for r in s["results"]:
    if r["what"] in ("prefill", "decode") and "adapters" not in r and "mode" not in r:
        mine.setdefault((r["what"], r["batch"]), r["tokens_per_s"])
for what, key, lk in [("prefill", ("prefill", 1), "prefill_tok_s"),
                      ("decode b1", ("decode", 1), "decode_tok_s_b1"),
                      ("decode b8", ("decode", 8), "decode_tok_s_b8")]:
    sv, lv = mine.get(key), l.get(lk)
    ratio = f"{sv / lv:.2f}x" if sv and lv else "?"
    print(f"{what}: sqlora {sv and round(sv, 1)} tok/s, llama.cpp {lv} tok/s, ratio {ratio}")
asked = {r["batch"]: r["tokens_per_s"] for r in s["results"] if r["what"] == "decode_question"}
for r in s["results"]:
    if r["what"] == "decode_constrained":
        free = asked.get(r["batch"])
        ratio = f"{r['tokens_per_s'] / free:.2f}x" if free else "?"
        print(f"decode b{r['batch']} after a question: constrained {r['tokens_per_s']:.1f} tok/s, "
              f"free {free and round(free, 1)} tok/s, {ratio}")
PY

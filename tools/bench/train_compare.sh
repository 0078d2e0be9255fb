#!/usr/bin/env bash
# Training throughput, sqlora's trainer against PyTorch + PEFT, side by side on the same CPU:
# the same GGUF model, the same rows (token ids written by sqlora's train_bench and read back by
# the Python peer), the same LoRA (r 8, alpha 16, all seven projections of all layers, no
# dropout), one micro-batch of ROWS rows per optimizer step, the same threads.
#
#   tools/bench/train_compare.sh MODEL.gguf [OUT]
#   env: DOMAIN (retail) ROWS (4) STEPS (3) THREADS (2) MAX_SEQ_LEN (1024)
#        REF_PY (/work/venvs/ref/bin/python: torch + transformers + peft)
#        CHECKPOINTING (0: sqlora without activation checkpointing)
#        PROFILE (release; "dev" uses the dev profile, whose dependencies and sqlora-train /
#        sqlora-model are built at opt-level 3 too)
#        PEFT_MODES ("checkpoint plain") MAX_MEM_GB (cap on the Python peer's address space;
#        default: the smaller of 12 GB and half of MemAvailable, so a batch that does not fit
#        fails in the peer with an allocation error rather than through the kernel's OOM killer)
#
# Tokens are counted the same way for both: every real token of every row (prompt + answer)
# per second of optimizer-step wall time (median over the steps after an untimed warm-up).
# Writes sqlora.json, rows.json, peft_<mode>.json into OUT (default target/bench/train) and
# prints a table with the ratio sqlora / PEFT.
set -euo pipefail
gguf=${1:?usage: train_compare.sh MODEL.gguf [OUT]}
out=${2:-target/bench/train}
domain=${DOMAIN:-retail}
rows=${ROWS:-4}
steps=${STEPS:-3}
threads=${THREADS:-2}
max_seq_len=${MAX_SEQ_LEN:-1024}
ref_py=${REF_PY:-/work/venvs/ref/bin/python}
profile=${PROFILE:-release}
modes=${PEFT_MODES:-checkpoint plain}
if [[ -z ${MAX_MEM_GB:-} ]]; then
    avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
    MAX_MEM_GB=$(awk -v a="$avail_kb" 'BEGIN {g = a / 1048576 / 2; if (g > 12) g = 12; if (g < 4) g = 4; printf "%.1f", g}')
fi
mkdir -p "$out"
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads

if [[ $profile == release ]]; then
    cargo build --release -p sqlora-train --example train_bench
    bin=target/release/examples/train_bench
else
    cargo build -p sqlora-train --example train_bench
    bin=target/debug/examples/train_bench
fi

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$bin" "$gguf" "$domain" "$rows" "$steps" "$out/rows.json" "$max_seq_len" |
    tail -n 1 | tee "$out/sqlora.json"
for mode in $modes; do
    echo "load average before peft $mode: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    "$ref_py" tools/bench/peft_train_bench.py --gguf "$gguf" --batch "$out/rows.json" \
        --steps "$steps" --mode "$mode" --threads "$threads" --max-mem-gb "$MAX_MEM_GB" \
        2>"$out/peft_$mode.log" | tail -n 1 | tee "$out/peft_$mode.json" ||
        echo "peft $mode failed (see $out/peft_$mode.log)" >&2
done

"$ref_py" - "$out" "$profile" $modes <<'EOF'
import json, sys
out, profile, modes = sys.argv[1], sys.argv[2], sys.argv[3:]
def load(p):
    try:
        with open(p) as f:
            return json.loads(f.read().strip() or "null")
    except (OSError, ValueError):
        return None
s = load(f"{out}/sqlora.json")
runs = [(f"sqlora ({profile})", s)] + [(f"peft {m}", load(f"{out}/peft_{m}.json")) for m in modes]
print()
print(f"{'engine':<20} {'rows':>4} {'tokens/step':>11} {'computed':>9} {'step s':>8} "
      f"{'tokens/s':>9} {'peak RSS MB':>11} {'load1':>6}  sqlora/this")
for name, r in runs:
    if not r:
        print(f"{name:<20} (no result)")
        continue
    if r.get("oom") or "tokens_per_s" not in r:
        print(f"{name:<20} {r.get('rows', ''):>4} {r.get('tokens_per_step', ''):>11} "
              f"{r.get('computed_tokens_per_step', ''):>9} {'—':>8} {'—':>9} "
              f"{r.get('peak_rss_mb', ''):>11} {r.get('loadavg_1m', 0):>6.2f}  "
              f"failed: {r.get('error')}")
        continue
    ratio = s["tokens_per_s"] / r["tokens_per_s"] if s and "tokens_per_s" in s else float("nan")
    print(f"{name:<20} {r['rows']:>4} {r['tokens_per_step']:>11} {r['computed_tokens_per_step']:>9} "
          f"{r['step_seconds']:>8.2f} {r['tokens_per_s']:>9.1f} {r['peak_rss_mb']:>11} "
          f"{r['loadavg_1m']:>6.2f}  {ratio:.2f}x")
print()
print("first-step loss (adapter B = 0, so both equal the base model's answer loss):",
      ", ".join(f"{n} {r['losses'][0]:.4f}" for n, r in runs if r and r.get("losses")))
EOF

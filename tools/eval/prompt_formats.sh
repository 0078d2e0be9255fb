#!/usr/bin/env bash
# Compares prompt formats on the DEV splits (never the test or human splits, which report the
# chosen format): the bundled templates (prompts/) against each folder of prompts/variants/,
# zero-shot, same model, same pipeline (`sqlora eval --base --prompts DIR`).
# Writes runs/prompt_formats/<model>_<variant>_<domain>.json and prints a table.
# Usage: tools/eval/prompt_formats.sh MODEL [VARIANT...]   (default: bundled + all variants)
# Environment: SQLORA (binary), N (dev questions per domain, default 15), DOMAINS, FIXTURES.
set -euo pipefail
cd "$(dirname "$0")/../.."
SQLORA=${SQLORA:-target/release/sqlora}
N=${N:-15}
model=${1:?usage: prompt_formats.sh MODEL [VARIANT...]}
shift
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(bundled $(ls prompts/variants))
read -r -a domains <<< "${DOMAINS:-retail hr library flights clinic music}"
fixtures=${FIXTURES:-${SQLORA_HOME:-$HOME/.cache/sqlora}/fixtures}
[ -d "$fixtures/${domains[0]}" ] || "$SQLORA" fixtures build --out "$fixtures" >/dev/null
mkdir -p runs/prompt_formats
for v in "${variants[@]}"; do
  args=()
  [ "$v" = bundled ] || args=(--prompts "prompts/variants/$v")
  for d in "${domains[@]}"; do
    out="runs/prompt_formats/${model}_${v}_$d.json"
    "$SQLORA" eval --base --model "$model" "${args[@]}" --dataset "datasets/$d/dev.jsonl" \
      --db-dir "$fixtures" --limit "$N" --examples-k 0 --json > "$out" 2> "${out%.json}.log"
  done
done
python3 - "$model" "${domains[*]}" "${variants[@]}" <<'PY'
import json, os, sys
model, domains, variants = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
print(f"| {model} prompt | questions | EX | valid SQL | exec errors | mean s/question |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for v in variants:
    files = [f"runs/prompt_formats/{model}_{v}_{d}.json" for d in domains]
    rs = [json.load(open(f)) for f in files if os.path.exists(f)]
    n = sum(r["total"] for r in rs)
    if not n:
        continue
    w = lambda k: sum(r[k] * r["total"] for r in rs) / n
    print(f"| {v} | {n} | {100*sum(r['correct'] for r in rs)/n:.1f}% | {100*w('valid_sql_rate'):.0f}% "
          f"| {100*w('exec_error_rate'):.0f}% | {w('mean_latency_ms')/1000:.1f} |")
PY

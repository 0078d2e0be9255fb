#!/usr/bin/env bash
# Test-split execution accuracy for EVALUATION.md: the base model, each domain adapter, the
# general adapter and DyLoRA truncations, all on the same first N test questions per domain.
# Writes runs/eval/<what>_<domain>.json (the `sqlora eval --json` object, with EX split by SQL
# skeletons seen and unseen in the training split) and prints a line each.
# Usage: tools/train/evaluate_all.sh [base|domain|general|ranks] [DOMAIN...]
# Environment: SQLORA (binary, default target/release/sqlora), N (questions, default 24),
# RANKS (default "1 2 4 8"), ADAPTER (for ranks), ADAPTERS (the folder of the base model's
# adapters, default adapters/smollm2-135m-instruct), MODEL (passed as --model when set),
# EXAMPLES_K (retrieved examples per prompt, default 0: the prompt these tables were made with;
# 3 is what the service does).
set -euo pipefail
cd "$(dirname "$0")/../.."
SQLORA=${SQLORA:-target/release/sqlora}
N=${N:-24}
ADAPTERS=${ADAPTERS:-adapters/smollm2-135m-instruct}
model_args=()
[ -z "${MODEL:-}" ] || model_args=(--model "$MODEL")
what=${1:-base}; shift || true
domains=("$@")
[ ${#domains[@]} -gt 0 ] || domains=(retail hr library flights clinic music)
# The databases `sqlora train` used (built on first use, one per domain).
fixtures=${SQLORA_FIXTURES:-${SQLORA_HOME:-$HOME/.cache/sqlora}/fixtures}
mkdir -p runs/eval
run() { # name domain args...
  local name=$1 d=$2; shift 2
  "$SQLORA" eval --dataset "datasets/$d/test.jsonl" --db-dir "$fixtures" --limit "$N" --json \
    --train "datasets/$d/train.jsonl" --examples-k "${EXAMPLES_K:-0}" "${model_args[@]}" "$@" \
    > "runs/eval/${name}_$d.json" 2> "runs/eval/${name}_$d.log"
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], round(100*r['ex'],1))" \
    "runs/eval/${name}_$d.json" "$name" "$d"
}
for d in "${domains[@]}"; do
  case $what in
    base) run base "$d" --base ;;
    domain) run domain "$d" --adapter "$ADAPTERS/$d" ;;
    general) run general "$d" --adapter "$ADAPTERS/general" ;;
    # DyLoRA truncations of a DyLoRA-trained adapter (ADAPTER, default $ADAPTERS/<domain>-dylora).
    ranks) for r in ${RANKS:-1 2 4 8}; do
             run "rank$r" "$d" --adapter "${ADAPTER:-$ADAPTERS/$d-dylora}" --rank "$r"
           done ;;
    *) echo "unknown: $what" >&2; exit 2 ;;
  esac
done

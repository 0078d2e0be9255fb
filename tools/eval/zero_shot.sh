#!/usr/bin/env bash
# Zero-shot execution accuracy of the named models on the first N questions of every bundled
# domain's SPLIT (test; human: the hand-written evaluation questions; human_dev: the hand-written
# development questions, see datasets/HUMAN.md), same prompt for all (the pipeline of
# `sqlora ask`/`eval --base`), for EVALUATION.md. Writes
# runs/zero_shot/<split>/<model>_<domain>.json (`sqlora eval --json`, with seen/unseen
# skeleton EX) and prints the table with tools/eval/zero_shot_table.py.
# Usage: tools/eval/zero_shot.sh [MODEL...]   (default: the three registry models)
# Environment: SQLORA (binary, default target/release/sqlora), SPLIT (default test), N
# (questions per domain, default 10), DOMAINS (default: all six), BATCH (default 8), PROMPTS
# (a templates folder for --prompts; default: the bundled templates), EXTRA (more eval flags),
# FIXTURES (default: $SQLORA_HOME/fixtures), TAG (results go to runs/zero_shot/<split>-<TAG>,
# e.g. TAG=free EXTRA=--no-constrain for the unconstrained column of an ablation), EXAMPLES_K
# (retrieved training examples per prompt, `eval --examples-k`, from the domain's pool (POOL);
# default 0, the zero-shot prompt, unless EXTRA names --examples-k; e.g. TAG=k3 EXAMPLES_K=3),
# POOL (the files of datasets/<domain>/ to retrieve from, e.g. "train.jsonl"; default: the
# service's pool, human_train.jsonl and train.jsonl), POOL_DIR (where POOL's files are instead
# of datasets/, laid out <dir>/<domain>/<file>: e.g. an older commit's datasets, for an A/B of
# two pools on the same fixtures).
set -euo pipefail
cd "$(dirname "$0")/../.."
SQLORA=${SQLORA:-target/release/sqlora}
N=${N:-10}
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(smollm2-135m-instruct qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct)
read -r -a domains <<< "${DOMAINS:-retail hr library flights clinic music}"
split=${SPLIT:-test}
runs="runs/zero_shot/$split${TAG:+-$TAG}"
fixtures=${FIXTURES:-${SQLORA_HOME:-$HOME/.cache/sqlora}/fixtures}
flags=()
[ -z "${PROMPTS:-}" ] || flags+=(--prompts "$PROMPTS")
read -r -a extra <<< "${EXTRA:-}"
# Zero-shot unless asked: `eval` itself defaults to the service's 3 retrieved examples.
[[ " ${extra[*]} " == *" --examples-k "* ]] || flags+=(--examples-k "${EXAMPLES_K:-0}")
flags+=("${extra[@]}")
for d in "${domains[@]}"; do
  [ -d "$fixtures/$d" ] || { "$SQLORA" fixtures build --out "$fixtures" >/dev/null; break; }
done
mkdir -p "$runs"
for m in "${models[@]}"; do
  "$SQLORA" model fetch "$m" >/dev/null
  for d in "${domains[@]}"; do
    out="$runs/${m}_$d.json"
    pool=()
    for f in ${POOL:-}; do pool+=(--examples "${POOL_DIR:-datasets}/$d/$f"); done
    "$SQLORA" eval --base --model "$m" --dataset "datasets/$d/$split.jsonl" --db-dir "$fixtures" \
      --limit "$N" --batch "${BATCH:-8}" --train "datasets/$d/train.jsonl" --json "${flags[@]}" "${pool[@]}" \
      --details "$runs/${m}_$d.details.jsonl" \
      > "$out" 2> "$runs/${m}_$d.log"
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], round(100*r['ex'],1), round(r.get('mean_latency_ms',0)))" \
      "$out" "$m" "$d"
  done
done
python3 tools/eval/zero_shot_table.py "$split${TAG:+-$TAG}"

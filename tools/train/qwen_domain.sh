#!/usr/bin/env bash
# Issue 14's recipe on the default base: trains DOMAIN's adapter on Qwen2.5-Coder-1.5B-Instruct
# with configs/domain_qwen.toml, keeping the checkpoint with the best EX on the domain's
# hand-written dev questions (datasets/<d>/human_dev.jsonl, scored as `eval` scores: constrained,
# beam fallback, the fixture's test-suite variants; DEV_K retrieved examples), then scores base and adapter on human_dev and on the hand-written evaluation
# questions (human.jsonl, never trained or tuned on), each zero-shot (k0: constrained, fallback,
# no retrieved examples) and with the service's decoding (k3: + 3 retrieved training examples).
# Results: OUT/<base|adapter>_<split>_k<K>.json (`sqlora eval --json`) and a table at the end.
# Usage: tools/train/qwen_domain.sh DOMAIN
# Environment: SQLORA (binary, default target/release/sqlora), FIXTURES (default
# $SQLORA_HOME/fixtures), OUT (default runs/qwen_domain/<domain>), TRAIN_ARGS (more `train`
# flags), SKIP_TRAIN=1 (score the adapter already in OUT/adapter), KS (default "0 3"), DEV_K
# (retrieved examples in the dev-EX prompts that pick the checkpoint, `train --examples-k`;
# default 0, as the first hr run was made), SPLITS (the splits scored, default "human_dev human";
# e.g. "test" for the generated test split issue 14's targets are set on).
set -euo pipefail
cd "$(dirname "$0")/../.."
d=${1:?usage: tools/train/qwen_domain.sh DOMAIN}
SQLORA=${SQLORA:-target/release/sqlora}
fixtures=${FIXTURES:-${SQLORA_HOME:-$HOME/.cache/sqlora}/fixtures}
out=${OUT:-runs/qwen_domain/$d}
model=qwen2.5-coder-1.5b-instruct
mkdir -p "$out"
[ -f "$fixtures/$d/$d.sqlite" ] || "$SQLORA" fixtures build --out "$fixtures" >/dev/null
if [ "${SKIP_TRAIN:-0}" != 1 ]; then
  echo "== train $d $(date -u +%H:%M:%S)"
  # shellcheck disable=SC2086
  "$SQLORA" train --model "$model" --config configs/domain_qwen.toml \
    --dataset "datasets/$d/train.jsonl" --dev "datasets/$d/human_dev.jsonl" --db "$fixtures/$d/$d.sqlite" \
    --examples-k "${DEV_K:-0}" --dev-loss-examples 8 --no-test --out "$out/adapter" \
    --run-dir "$out/run" ${TRAIN_ARGS:-} \
    2>&1 | tr '\r' '\n' | grep --line-buffered -v '^\s*$' > "$out/train.log"
  tail -2 "$out/train.log"
fi
read -r -a ks <<< "${KS:-0 3}"
read -r -a splits <<< "${SPLITS:-human_dev human}"
for split in "${splits[@]}"; do
  for k in "${ks[@]}"; do
    for who in base adapter; do
      if [ "$who" = base ]; then gen=(--base); else gen=(--adapter "$out/adapter"); fi
      r="$out/${who}_${split}_k$k"
      [ -s "$r.json" ] && continue
      echo "== eval $who $split k=$k $(date -u +%H:%M:%S)"
      "$SQLORA" eval "${gen[@]}" --model "$model" --dataset "datasets/$d/$split.jsonl" \
        --db-dir "$fixtures" --train "datasets/$d/train.jsonl" --examples-k "$k" --json \
        --details "$r.details.jsonl" > "$r.json" 2> "$r.log"
    done
  done
done
python3 - "$out" "$d" <<'PY'
import json, os, sys
out, d = sys.argv[1], sys.argv[2]
print(f"| {d} | split | retrieved examples | base EX % | adapter EX % | base valid % | adapter valid % |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for split in ("human_dev", "human", "test"):
    for k in ("0", "3"):
        r = {}
        for who in ("base", "adapter"):
            p = os.path.join(out, f"{who}_{split}_k{k}.json")
            if os.path.exists(p) and os.path.getsize(p):
                r[who] = json.load(open(p))
        if len(r) < 2:
            continue
        ex = {w: 100 * r[w]["ex"] for w in r}
        valid = {w: 100 * r[w]["valid_sql_rate"] for w in r}
        print(f"| | {split} | {k} | {ex['base']:.1f} | {ex['adapter']:.1f} | {valid['base']:.0f} | {valid['adapter']:.0f} |")
PY

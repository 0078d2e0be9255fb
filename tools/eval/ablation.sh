#!/usr/bin/env bash
# The decoding ablation of EVALUATION.md (issue: answers that hold up): the same model on the
# first N questions per domain of SPLIT under each configuration, through
# tools/eval/zero_shot.sh, then one table (tools/eval/ablation_table.py).
#
#   free         free decoding (--no-constrain)
#   constrained  schema-constrained decoding (the default of ask/eval/serve)
#   examples     + K retrieved train examples in the prompt (--examples-k K)
#   vote         + C candidates (beam search), execution-based vote (--candidates C)
#   all          constrained + examples + vote
#
# Usage: tools/eval/ablation.sh MODEL [CONFIG...]   (default: all five)
# Environment: SPLIT (test|human, default test), N (questions per domain, default 10), K
# (default 3), C (default 4), FIXTURES, SQLORA, BATCH as for zero_shot.sh. Results go to
# runs/zero_shot/<split>-ablation-<config>/.
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:?usage: ablation.sh MODEL [CONFIG...]}
shift
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(free constrained examples vote all)
K=${K:-3}
C=${C:-4}
for c in "${configs[@]}"; do
  case $c in
    free) extra="--no-constrain" ;;
    constrained) extra="" ;;
    examples) extra="--examples-k $K" ;;
    vote) extra="--candidates $C" ;;
    all) extra="--examples-k $K --candidates $C" ;;
    *) echo "unknown configuration $c" >&2; exit 2 ;;
  esac
  echo "== $model $c ($extra)" >&2
  TAG=ablation-$c EXTRA="$extra" tools/eval/zero_shot.sh "$model" >/dev/null
done
python3 tools/eval/ablation_table.py "${SPLIT:-test}" "${configs[@]}"

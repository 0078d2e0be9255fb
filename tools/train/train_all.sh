#!/usr/bin/env bash
# Trains the bundled adapters one domain after another with configs/domain.toml and logs each
# run to runs/<domain>.log. Usage: tools/train/train_all.sh [DOMAIN...] (default: all six).
# Environment: SQLORA (the binary, default target/release/sqlora), TEST_QUESTIONS (default 24),
# DEV_QUESTIONS (default 16). Extra arguments for `sqlora train` go in TRAIN_ARGS (e.g.
# TRAIN_ARGS="--max-steps 20"); ADAPTERS (where they go, default adapters/smollm2-135m-instruct).
set -euo pipefail
cd "$(dirname "$0")/../.."
SQLORA=${SQLORA:-target/release/sqlora}
ADAPTERS=${ADAPTERS:-adapters/smollm2-135m-instruct}
domains=("$@")
[ ${#domains[@]} -gt 0 ] || domains=(retail hr library flights clinic music)
mkdir -p runs
failed=()
for d in "${domains[@]}"; do
  echo "== $d $(date -u +%H:%M:%S)"
  # One domain failing (an OOM kill, say) does not stop the others; the exit status tells.
  if ! "$SQLORA" train --domain "$d" --config configs/domain.toml \
    --dev-questions "${DEV_QUESTIONS:-8}" --test-questions "${TEST_QUESTIONS:-24}" \
    --out "$ADAPTERS/$d" --run-dir "runs/$d" ${TRAIN_ARGS:-} 2>&1 | tr '\r' '\n' \
    | grep --line-buffered -v '^\s*$' > "runs/$d.log"; then
    echo "FAILED: $d (see runs/$d.log)"
    failed+=("$d")
  fi
  tail -3 "runs/$d.log"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi

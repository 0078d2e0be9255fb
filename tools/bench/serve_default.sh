#!/usr/bin/env bash
# Serving benchmark on the default model with the service's defaults (BENCHMARKS.md, "Serving
# the default model at 8 clients"): starts `sqlora serve` on the base model (no adapters, no
# feedback store) over the bundled fixtures, runs `sqlora bench serve` against it and stops it.
#   tools/bench/serve_default.sh [OUT.json]
# Environment: SQLORA (default target/release/sqlora), MODEL (default: the default model),
# FIXTURES (default $SQLORA_HOME/fixtures, built when missing), CLIENTS (8), REQUESTS (16),
# MODES (prefix,mixed,serial), PORT (8099). Run on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
SQLORA=${SQLORA:-target/release/sqlora}
out=${1:-target/bench/serve_default.json}
fixtures=${FIXTURES:-${SQLORA_HOME:-$HOME/.cache/sqlora}/fixtures}
[ -d "$fixtures/retail" ] || "$SQLORA" fixtures build --out "$fixtures" >/dev/null
mkdir -p "$(dirname "$out")" target/no-adapters
model=()
[ -z "${MODEL:-}" ] || model=(--model "$MODEL")
addr=127.0.0.1:${PORT:-8099}
"$SQLORA" serve "${model[@]}" --addr "$addr" --db-dir "$fixtures" \
  --adapters-dir target/no-adapters --no-feedback > "${out%.json}.serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
  curl -sf "http://$addr/healthz" >/dev/null && break
  kill -0 $pid 2>/dev/null || { cat "${out%.json}.serve.log"; exit 1; }
  sleep 2
done
"$SQLORA" bench serve --url "http://$addr" --clients "${CLIENTS:-8}" \
  --requests "${REQUESTS:-16}" --modes "${MODES:-prefix,mixed,serial}" --json > "$out"
echo "$out"

#!/usr/bin/env bash
# Checks a domain's hand-written training examples (datasets/<domain>/human_train.jsonl) with
# `sqlora dataset check` in a scratch copy of the domain: every gold query parses, passes the
# guard and returns rows on the base fixture; difficulty labels follow the Spider hardness
# rules (with FIX=1 they are rewritten in place); and no question or normalised query repeats
# one of the domain's other files (train, dev, test, human, human_dev), nor is a near-duplicate
# of a held-out question (a paraphrase with nearly the same query, or a query with the same
# rows: sqlora-data's `near` rule).
#
#   tools/datasets/check_hand_train.sh DOMAIN [FILE]      (SQLORA=binary, FIX=1)
set -euo pipefail
domain=${1:?usage: check_hand_train.sh DOMAIN [FILE]}
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/datasets/$domain"
file=${2:-$src/human_train.jsonl}
sqlora=${SQLORA:-$root/target/release/sqlora}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/$domain"
cp "$src/schema.sql" "$src/data.sql" "$scratch/$domain/"
# Everything else of the domain goes in the train slot, the file under check in the test slot.
cat "$src"/train.jsonl "$src"/dev.jsonl "$src"/test.jsonl "$src"/human.jsonl "$src"/human_dev.jsonl \
  > "$scratch/$domain/train.jsonl"
: > "$scratch/$domain/dev.jsonl"
cp "$file" "$scratch/$domain/test.jsonl"
# As itself too, beside the held-out files, for the near-duplicate rule.
cp "$file" "$scratch/$domain/human_train.jsonl"
cp "$src/human.jsonl" "$src/human_dev.jsonl" "$scratch/$domain/"
fix=()
[ "${FIX:-0}" = 1 ] && fix=(--fix-difficulty)
out=$("$sqlora" dataset check --datasets "$scratch" "${fix[@]}" || true)
[ "${FIX:-0}" = 1 ] && cp "$scratch/$domain/test.jsonl" "$file"
# Split sizes and skeleton novelty are rules of generated test splits, not of this file; the
# other files' own empty results are theirs.
problems=$(printf '%s\n' "$out" | grep -E '^  ' | grep -vE '\[(split-size|skeleton-novelty|splits?)\]' \
  | grep -vE "\[empty-results\]" || true)
# Every query alone must return rows, and not only NULLs or zeros.
"$sqlora" fixtures build --datasets "$scratch" --variants 1 --out "$scratch/built" >/dev/null
empty=$(python3 - "$scratch/built/$domain/$domain.sqlite" "$file" <<'PY'
import json, sqlite3, sys
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
for line in open(sys.argv[2]):
    if not line.strip():
        continue
    ex = json.loads(line)
    try:
        rows = con.execute(ex["sql"]).fetchall()
    except sqlite3.Error as e:
        print(f"{ex['id']} ({e})")
        continue
    if not rows or all(v in (None, 0, 0.0, "") for r in rows for v in r):
        print(ex["id"])
PY
)
n=$(wc -l < "$file")
if [ -n "$problems$empty" ]; then
  printf '%s\n' "$problems"
  [ -n "$empty" ] && printf "returns no rows (or only NULL/0): %s\n" "$empty"
  echo "FAIL: $domain $file ($n examples)"
  exit 1
fi
echo "ok: $domain $file ($n examples)"

#!/usr/bin/env bash
# End-to-end test of the web page in headless Chromium against a real `sqlora serve`.
#
# Starts `sqlora serve --addr 127.0.0.1:0` (the port it prints), or uses SQLORA_E2E_URL, a server
# that is already running; then opens `/?db=retail&q=How many customers are there?` in headless Chromium
# with --dump-dom, and checks that the page asked and shows the answer: the SQL, a result table
# with a header row and data rows, equal to what POST /v1/query answers for the same question.
# Then checks that a 4xx answer (an absurd max_rows) and an unknown database show the error box,
# and the feedback loop: 👍 on the answer, then an edited SQL run through /v1/sql and sent as the
# correction, both stored in the server's feedback file (a fresh one under the test's folder).
# With SCREENSHOT=docs/page.png it also saves a 1280x900 screenshot of the answered page.
#
# Needs Debian's chromium (/usr/bin/chromium; `apt-get install -y chromium`): without it the
# test is skipped (exit 0), unless SQLORA_REQUIRE_BROWSER=1, when it fails.
# Environment: SQLORA_BIN (default target/debug/sqlora), SQLORA_SERVE_ARGS (extra arguments for
# `sqlora serve`), CHROMIUM (default /usr/bin/chromium), E2E_DB, E2E_QUESTION, E2E_EDIT_SQL (the
# corrected SQL, default a count over customers), SERVE_WAIT_S.
set -euo pipefail
cd "$(dirname "$0")/../.."

chromium_bin="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium_bin" ]; then
  if [ "${SQLORA_REQUIRE_BROWSER:-0}" = "1" ]; then
    echo "FAIL: $chromium_bin not found and SQLORA_REQUIRE_BROWSER=1 (apt-get install -y chromium)" >&2
    exit 1
  fi
  echo "skipped: $chromium_bin not found (apt-get install -y chromium; SQLORA_REQUIRE_BROWSER=1 to fail instead)"
  exit 0
fi

db="${E2E_DB:-retail}"
question="${E2E_QUESTION:-How many customers are there?}"
work=$(mktemp -d)
server_pid=""
feedback_db=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${SQLORA_E2E_URL:-}" ]; then
  base="${SQLORA_E2E_URL%/}"
else
  bin="${SQLORA_BIN:-target/debug/sqlora}"
  [ -x "$bin" ] || { echo "FAIL: $bin not found (cargo build -p sqlora)" >&2; exit 1; }
  # Port 0: the server picks a free port and prints "listening on http://ADDR".
  # shellcheck disable=SC2086
  feedback_db="$work/feedback.sqlite3"
  "$bin" serve --addr 127.0.0.1:0 --feedback-db "$feedback_db" ${SQLORA_SERVE_ARGS:-} >"$work/server.log" 2>&1 &
  server_pid=$!
  wait_s="${SERVE_WAIT_S:-180}"
  base=""
  for ((i = 0; i < wait_s * 2; i++)); do
    base=$(grep -o 'listening on http://[0-9.:]*' "$work/server.log" | head -n 1 | sed 's/^listening on //' || true)
    if [ -n "$base" ] && curl -fsS "$base/healthz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "FAIL: sqlora serve exited before it answered /healthz:" >&2
      tail -n 50 "$work/server.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  if [ -z "$base" ] || ! curl -fsS "$base/healthz" >/dev/null; then
    echo "FAIL: no answer on /healthz after ${wait_s}s" >&2
    tail -n 50 "$work/server.log" >&2
    exit 1
  fi
fi
echo "server: $base"

# The page itself: served at /, self-contained (no external addresses).
curl -fsS "$base/" -o "$work/index.html"
grep -q 'id="ask-form"' "$work/index.html" || { echo "FAIL: GET / is not the sqlora page" >&2; exit 1; }
if grep -Eq '(src|href)="(https?:)?//' "$work/index.html"; then
  echo "FAIL: the page loads something from another host" >&2
  exit 1
fi

urlencode() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

# Headless Chromium as the machine allows it: root needs --no-sandbox; no background traffic.
run_chromium() {
  local profile
  profile=$(mktemp -d "$work/profile.XXXX")
  timeout "${CHROMIUM_TIMEOUT_S:-300}" "$chromium_bin" --headless --no-sandbox --disable-gpu --disable-quic \
    --no-first-run --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$profile" --enable-logging=stderr --v=0 \
    --virtual-time-budget=60000 "$@" 2>>"$work/chromium.log"
}

failed=0
check() { # name, command...
  local name=$1
  shift
  if "$@"; then echo "PASS: $name"; else echo "FAIL: $name"; failed=1; fi
}

# 1. The API's own answer to the question (greedy decoding: the page must show the same).
python3 -c 'import json, sys; print(json.dumps({"database": sys.argv[1], "question": sys.argv[2]}))' "$db" "$question" >"$work/req.json"
status=$(curl -sS -o "$work/answer.json" -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary @"$work/req.json" "$base/v1/query")
if [ "$status" != "200" ]; then
  echo "FAIL: POST /v1/query answered $status: $(cat "$work/answer.json")" >&2
  exit 1
fi

# 2. The page asks the same question through ?db=&q= and shows the answer.
page="$base/?db=$(urlencode "$db")&q=$(urlencode "$question")"
run_chromium --dump-dom "$page" >"$work/answer_dom.html" || true
check "page shows the SQL and the result table for '$question'" \
  python3 tools/e2e/check_dom.py answer "$work/answer_dom.html" "$work/answer.json"

# 3. A 4xx from the server (absurd max_rows) is shown in the error box.
run_chromium --dump-dom "$page&max_rows=1000000000" >"$work/bad_dom.html" || true
check "a 4xx answer shows the error box" python3 tools/e2e/check_dom.py error "$work/bad_dom.html" "Error 4"

# 4. An unknown database in the address is an error too, not a silent empty page.
run_chromium --dump-dom "$base/?db=no_such_database&q=x" >"$work/unknown_dom.html" || true
check "an unknown database shows the error box" python3 tools/e2e/check_dom.py error "$work/unknown_dom.html" "no_such_database"

# 5. Feedback: 👍, then "edit SQL and run" and "send as the right SQL"; both land in the store.
if python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1])).get("query_id") else 1)' "$work/answer.json"; then
  edit_sql="${E2E_EDIT_SQL:-SELECT COUNT(*) FROM customers}"
  run_chromium --dump-dom "$page&feedback=up&edit=$(urlencode "$edit_sql")&send=1" >"$work/feedback_dom.html" || true
  check "👍 and an edited, run and sent SQL are stored as feedback" \
    python3 tools/e2e/check_dom.py feedback "$work/feedback_dom.html"
  if [ -n "$feedback_db" ]; then
    check "the feedback file holds the verdict and the correction" python3 -c '
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
rows = c.execute("SELECT verdict, corrected_sql FROM feedback ORDER BY id").fetchall()
sys.exit(0 if [r[0] for r in rows][-2:] == ["correct", "wrong"] and rows[-1][1] == sys.argv[2] else print(rows) or 1)
' "$feedback_db" "$edit_sql"
  fi
else
  echo "skipped: feedback (the server keeps none: its answers have no query_id)"
fi

# 6. The screenshot kept in docs/.
if [ -n "${SCREENSHOT:-}" ]; then
  mkdir -p "$(dirname "$SCREENSHOT")"
  shot=$(realpath -m "$SCREENSHOT")
  (cd "$work" && run_chromium --window-size=1280,900 --screenshot="$shot" "$page" >/dev/null) || true
  size=$(stat -c %s "$shot" 2>/dev/null || echo 0)
  check "screenshot $SCREENSHOT written ($size bytes)" test "$size" -gt 20000
fi

# 7. No uncaught JavaScript exception on any of those pages.
if grep -q 'CONSOLE.*Uncaught' "$work/chromium.log"; then
  echo "FAIL: the page threw: $(grep 'CONSOLE.*Uncaught' "$work/chromium.log" | head -n 3)"
  failed=1
else
  echo "PASS: no uncaught JavaScript exception"
fi

if [ "$failed" != 0 ]; then
  echo "--- chromium log (tail, without D-Bus noise)"; grep -Ev 'dbus|D-Bus' "$work/chromium.log" | tail -n 20 || true
  if [ -f "$work/server.log" ]; then echo "--- server log (tail)"; tail -n 40 "$work/server.log"; fi
  exit 1
fi
echo "page e2e: all checks passed"

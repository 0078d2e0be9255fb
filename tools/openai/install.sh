#!/usr/bin/env bash
# Installs the official OpenAI Python client into a virtual environment (default
# target/openai-venv) for the test that drives sqlora's OpenAI endpoints with it
# (crates/sqlora-serve/tests/http.rs, `the_official_openai_client_works`). Prints the
# environment's python, which that test takes from $SQLORA_OPENAI_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${1:-target/openai-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "openai==3.63.0"
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac
echo "$venv/bin/python"

#!/usr/bin/env bash
# Runs every check spyglass has: lint, format, type check, and the whole test suite (in parallel).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== ruff"
.venv/bin/ruff check spyglass tests bench setup.py
.venv/bin/ruff format --check spyglass tests bench setup.py
echo "== mypy"
.venv/bin/mypy
run_pytest() {
  set +e
  .venv/bin/pytest "$@"
  local status=$?
  set -e
  if [ "$status" = "5" ]; then
    echo "pytest collected no tests: that is a failure" >&2
    exit 1
  fi
  if [ "$status" != "0" ]; then
    exit "$status"
  fi
}
echo "== pytest (parallel)"
run_pytest -n auto -q -m "not alone" "$@"
echo "== pytest (latency-sensitive, alone)"
run_pytest -q -rP -m alone "$@"

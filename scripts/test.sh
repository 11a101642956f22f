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
echo "== the UI's API types are the ones the API's models generate"
bash scripts/api_types.sh --check
echo "== eslint and prettier on the UI"
npm run --prefix ui --silent lint
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
# The tests that judge latencies first, the flood last: a flood leaves the disk and page cache busy for a while
# after it ends, which blurs the latencies the next test compares.
if [ "$#" -eq 0 ]; then
  run_pytest -q -rP -m alone --deselect tests/e2e/test_flood.py
  run_pytest -q -rP -m alone tests/e2e/test_flood.py
else
  run_pytest -q -rP -m alone "$@"
fi

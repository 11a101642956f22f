#!/usr/bin/env bash
# Runs every check spyglass has: lint, format, type check, and the whole test suite (in parallel).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== ruff"
.venv/bin/ruff check spyglass tests bench
.venv/bin/ruff format --check spyglass tests bench
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
set +e
.venv/bin/pytest -n auto -q "$@"
status=$?
set -e
if [ "$status" = "5" ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"

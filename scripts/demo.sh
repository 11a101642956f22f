#!/usr/bin/env bash
# Installs only what serving needs (scripts/setup.sh --serve: .venv with spyglass, the built web UI; the browser,
# test packages and dev tools are the full scripts/setup.sh's), starts spyglass on its embedded DuckDB store, and
# feeds it live traffic from the demo services.
# Open http://127.0.0.1:8686/ to see the traces. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --serve

.venv/bin/spyglass serve --data-dir "${SPYGLASS_DATA_DIR:-./spyglass-data}" "$@" &
server=$!
trap 'kill $demo $server 2>/dev/null; wait $server 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do
  if .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8686/api/v1/status', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.2
done
.venv/bin/spyglass demo --otlp-endpoint http://127.0.0.1:4318 &
demo=$!
echo
echo "spyglass is running with demo traffic: open http://127.0.0.1:8686/  (Ctrl-C to stop)"
echo
wait $server

#!/usr/bin/env bash
# Installs only what serving needs (scripts/setup.sh --serve: .venv with spyglass, the built web UI; the browser,
# test packages and dev tools are the full scripts/setup.sh's), starts spyglass on its embedded DuckDB store, and
# feeds it live traffic from the demo services. spyglass watches the demo's SLOs (spyglass/demo/slos.yaml); run
# `.venv/bin/spyglass demo --scenario zone-errors` beside it (or start this with SPYGLASS_SCENARIO=zone-errors) to
# make one burn and open an alert, explained. Arguments go to `spyglass serve`.
# Open http://127.0.0.1:8686/ to see the traces. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --serve

.venv/bin/spyglass serve --data-dir "${SPYGLASS_DATA_DIR:-./spyglass-data}" --slos spyglass/demo/slos.yaml "$@" &
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
echo "its SLOs: http://127.0.0.1:8686/slos; make one burn: .venv/bin/spyglass demo --scenario zone-errors"
echo
wait $server

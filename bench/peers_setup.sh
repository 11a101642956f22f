#!/usr/bin/env bash
# Creates .venv-peers, the virtualenv in which bench/explain_peers.py runs TraceRCA and MicroRank as published in
# RCAEval on PyPI. Kept apart from .venv: RCAEval's own extras pin hundreds of packages (torch among them) that
# spyglass must not inherit. Only what its tracerca and microrank modules import is installed, every version
# pinned and installed with --no-deps, so a fresh clone gets the same environment. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=".venv-peers"
# rcaeval declares no core dependencies; tracerca.py and microrank.py import numpy, pandas, tqdm and dateutil.
PACKAGES=(
  rcaeval==1.8.1
  numpy==1.26.4
  pandas==2.2.3
  python-dateutil==2.9.0.post0
  pytz==2025.2
  tzdata==2025.2
  six==1.17.0
  tqdm==4.67.1
)

if [ ! -x "$VENV/bin/python" ]; then
  echo "peers_setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.peers-installed"
want="$(printf '%s\n' "${PACKAGES[@]}" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "peers_setup: installing ${PACKAGES[*]}"
  # the grep drops notes about absent local package indexes; with pipefail, a pip error still stops the script
  "$VENV/bin/python" -m pip install -q --no-deps "${PACKAGES[@]}" 2>&1 | { grep -v "^WARNING: Location" || true; }
  "$VENV/bin/python" -m pip check
  echo "$want" >"$stamp"
fi
# Fail here, loudly, if the two modules cannot be loaded the way the bench loads them.
"$VENV/bin/python" bench/peers/run_peers.py --check
echo "peers_setup: $VENV is ready"

#!/usr/bin/env bash
# Installs everything spyglass needs on a fresh machine, idempotently: Debian packages (node and npm for the web UI
# and the JS SDK interop test, chromium for the browser tests), a Python virtualenv in .venv with spyglass, its chdb
# extra and its dev tools (build among them, for the wheel test), the npm test dependencies, and the web UI built
# from ui/ into spyglass/web/static/dist.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

packages=(chromium)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi
apt_install "${packages[@]}"

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi

stamp=".venv/.spyglass-installed"
want="$(cat pyproject.toml tests/e2e/js/package-lock.json | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -d tests/e2e/js/node_modules ]; then
  echo "setup: installing Python packages"
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  # chdb (ClickHouse in-process) is an optional extra of the package; the ClickHouse store's tests run on it.
  .venv/bin/python -m pip install -q -e '.[dev,chdb]' 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import spyglass.server" # fail here, loudly, if the install did not work
  echo "setup: installing npm packages for the JS SDK test"
  npm ci --prefix tests/e2e/js --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

# The web UI: npm packages from ui/package-lock.json, then type-check and bundle. Rebuilt whenever the lock file,
# a source file or the build configuration changes, or the bundle is missing.
ui_stamp=".venv/.spyglass-ui-built"
ui_want="$(find ui -path ui/node_modules -prune -o -type f -print | LC_ALL=C sort | xargs cat | sha256sum | cut -d' ' -f1)"
if [ ! -f "$ui_stamp" ] || [ "$(cat "$ui_stamp")" != "$ui_want" ] || [ ! -f spyglass/web/static/dist/index.html ] \
  || [ ! -d ui/node_modules ]; then
  echo "setup: building the web UI"
  npm ci --prefix ui --no-audit --no-fund --loglevel=error
  npm run --prefix ui --silent build
  echo "$ui_want" > "$ui_stamp"
fi
echo "setup: ready"

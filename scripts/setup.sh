#!/usr/bin/env bash
# Installs what spyglass needs on a fresh machine, idempotently.
#
#   bash scripts/setup.sh          everything (what .ci/run and scripts/test.sh need): Debian packages (node and npm
#                                  for the web UI and the JS SDK interop test, chromium for the browser tests), a
#                                  Python virtualenv in .venv with spyglass, its chdb extra and its dev tools (build
#                                  among them, for the wheel test), the npm test dependencies, and the web UI built
#                                  from ui/ into spyglass/web/static/dist.
#   bash scripts/setup.sh --serve  only what serving needs (scripts/demo.sh): node and npm if absent, .venv with
#                                  spyglass itself, and the built web UI. No browser, no dev tools, no test packages,
#                                  so a newcomer's first `scripts/demo.sh` reaches live traces quickly.
#
# The Python install and the UI build are independent, so they run side by side.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="full"
case "${1:-}" in
  "") ;;
  --serve) mode="serve" ;;
  *) echo "usage: bash scripts/setup.sh [--serve]" >&2; exit 2 ;;
esac

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

packages=()
if [ "$mode" = "full" ]; then packages+=(chromium); fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi
if [ ${#packages[@]} -gt 0 ]; then apt_install "${packages[@]}"; fi

# The web UI: npm packages from ui/package-lock.json, then type-check and bundle. Rebuilt whenever the lock file,
# a source file or the build configuration changes, or the bundle is missing. The stamp lives beside the bundle
# (not in .venv), so it can be written before .venv exists.
build_ui() {
  local ui_stamp="ui/node_modules/.spyglass-ui-built"
  local ui_want
  ui_want="$(find ui -path ui/node_modules -prune -o -type f -print | LC_ALL=C sort | xargs cat | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$ui_stamp" ] || [ "$(cat "$ui_stamp")" != "$ui_want" ] || [ ! -f spyglass/web/static/dist/index.html ]; then
    echo "setup: building the web UI"
    npm ci --prefix ui --no-audit --no-fund --loglevel=error --prefer-offline
    npm run --prefix ui --silent build
    echo "$ui_want" > "$ui_stamp"
  fi
}
build_ui &
ui_build=$!

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi

pip_install() {
  .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2>&1 | grep -v "^WARNING: Location" || true
}

# Serving: spyglass itself (editable: it serves the checkout's own UI bundle). A full install satisfies it too.
serve_stamp=".venv/.spyglass-installed-serve"
serve_want="$(sha256sum < pyproject.toml | cut -d' ' -f1)"
if [ "$mode" = "serve" ] && { [ ! -f "$serve_stamp" ] || [ "$(cat "$serve_stamp")" != "$serve_want" ]; }; then
  echo "setup: installing spyglass into .venv"
  pip_install -e .
  .venv/bin/python -c "import spyglass.server" # fail here, loudly, if the install did not work
  echo "$serve_want" > "$serve_stamp"
fi

# Testing: dev tools, the chdb extra (the ClickHouse store's tests run on it), the JS SDK test's npm packages.
stamp=".venv/.spyglass-installed"
want="$(cat pyproject.toml tests/e2e/js/package-lock.json | sha256sum | cut -d' ' -f1)"
if [ "$mode" = "full" ] && { [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -d tests/e2e/js/node_modules ]; }; then
  echo "setup: installing Python packages"
  pip_install --upgrade pip
  pip_install -e '.[dev,chdb]'
  .venv/bin/python -c "import spyglass.server" # fail here, loudly, if the install did not work
  echo "setup: installing npm packages for the JS SDK test"
  npm ci --prefix tests/e2e/js --no-audit --no-fund --loglevel=error --prefer-offline
  echo "$want" > "$stamp"
  echo "$serve_want" > "$serve_stamp"
fi

if ! wait "$ui_build"; then
  echo "setup: the web UI build failed" >&2
  exit 1
fi
echo "setup: ready"

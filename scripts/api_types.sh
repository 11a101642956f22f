#!/usr/bin/env bash
# Regenerates ui/src/api.ts, the web UI's types of every API answer, from the query API's OpenAPI document
# (`spyglass openapi`, the same document /openapi.json serves) with openapi-typescript.
#
#   bash scripts/api_types.sh          write ui/src/api.ts
#   bash scripts/api_types.sh --check  fail when ui/src/api.ts differs from what the code generates (CI)
set -euo pipefail
cd "$(dirname "$0")/.."

document="$(mktemp --suffix .json)"
generated="$(mktemp --suffix .ts)"
trap 'rm -f "$document" "$generated"' EXIT
.venv/bin/spyglass openapi > "$document"
ui/node_modules/.bin/openapi-typescript "$document" --output "$generated" \
  --root-types --root-types-no-schema-prefix --silent

case "${1:-}" in
  "") cp "$generated" ui/src/api.ts; echo "wrote ui/src/api.ts" ;;
  --check)
    if ! diff -u ui/src/api.ts "$generated"; then
      echo "ui/src/api.ts is not what the API's models generate: run bash scripts/api_types.sh" >&2
      exit 1
    fi ;;
  *) echo "usage: bash scripts/api_types.sh [--check]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Build the documentation site with warnings as errors (mkdocs --strict), as CI does.
# Usage: scripts/build_docs.sh [OUTPUT_DIR]   (default: a temporary directory, removed afterwards)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
MKDOCS="$VENV/bin/mkdocs"
if [ ! -x "$MKDOCS" ]; then
  "$VENV/bin/pip" install -q "mkdocs-material>=9.6" "mkdocstrings[python]>=1.0"
fi
if [ $# -ge 1 ]; then
  OUT=$1
else
  OUT=$(mktemp -d)
  trap 'rm -rf "$OUT"' EXIT
fi
"$MKDOCS" build --strict --clean -d "$OUT"
echo "docs built: $OUT"

#!/usr/bin/env bash
# Serve the built demo (scripts/build_web.sh) on http://127.0.0.1:${PORT:-8000}.
# WebGPU needs a secure context: 127.0.0.1 and localhost count as one.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f web/dist/index.html ] || { echo "web/dist/ is missing: run scripts/build_web.sh first" >&2; exit 1; }
echo "serving web/dist on http://127.0.0.1:${PORT:-8000}/ (Ctrl-C stops)"
exec python3 -m http.server --bind 127.0.0.1 --directory web/dist "${PORT:-8000}"

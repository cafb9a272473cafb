#!/usr/bin/env bash
# Build the browser demo into web/dist/: index.html, app.js, style.css and
# pkg/ (the wasm module and its JavaScript glue). Serve it with
# scripts/serve_web.sh; any static file server works.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/web_tools.sh

cargo build -p taskgrad-web --profile web --target wasm32-unknown-unknown
rm -rf web/dist
mkdir -p web/dist
wasm-bindgen --target web --no-typescript --out-dir web/dist/pkg \
    target/wasm32-unknown-unknown/web/taskgrad_web.wasm
cp web/www/* web/dist/
wasm=web/dist/pkg/taskgrad_web_bg.wasm
echo "web/dist/ built: $(du -k "$wasm" | cut -f1) KiB of wasm ($(gzip -9c "$wasm" | wc -c | awk '{printf "%d", $1/1024}') KiB gzipped)"

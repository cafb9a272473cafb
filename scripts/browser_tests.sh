#!/usr/bin/env bash
# taskgrad in a real browser (issue 14): installs what is missing (chromium,
# chromium-driver, the wasm32 target, a wasm-bindgen-cli matching Cargo.lock),
# then
#   1. the kernel tests of web/tests/browser.rs in headless Chromium through
#      wasm-bindgen-test, against the CPU reference;
#   2. the demo page end to end (scripts/browser_e2e.py): built, served on
#      127.0.0.1, trained through its controls, its table checked, a
#      screenshot saved, and W-iris's steps/s in the page printed.
# Arguments go to browser_e2e.py (e.g. --screenshot assets/web_demo.png).
# Chromium's WebGPU runs on its own SwiftShader where there is no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/lib/chromium/chromium ] || ! command -v chromedriver >/dev/null; then
    echo "== installing chromium and chromium-driver"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium chromium-driver >/dev/null
fi
source scripts/web_tools.sh
export CHROMEDRIVER="${CHROMEDRIVER:-$(command -v chromedriver)}"

echo "== kernel tests in headless Chromium (wasm-bindgen-test, WebGPU)"
# The runner's default limit (20 s) is too short for cold shader compiles on SwiftShader.
(cd web && WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-600}" \
    cargo test --profile web --target wasm32-unknown-unknown --test browser)

echo "== the demo page, end to end"
scripts/build_web.sh
python3 scripts/browser_e2e.py "$@"

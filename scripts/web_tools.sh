#!/usr/bin/env bash
# The tools that build taskgrad for the browser, installed when missing:
# the wasm32 target, and wasm-bindgen-cli at exactly the version of
# wasm-bindgen in Cargo.lock (the two must match; a mismatch refuses to build).
# Sourced by build_web.sh and browser_tests.sh.
set -euo pipefail

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
    echo "== installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (matches Cargo.lock; about 9 minutes, once)"
    # No --locked: the CLI's own lock file does not resolve against every index.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

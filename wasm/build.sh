#!/usr/bin/env bash
# Builds the npm package @sightline/web (wasm/js/dist) from a clean checkout: the core to
# wasm32 twice (the SDK module, and the producer kit's module for tests), wasm-bindgen (the
# pinned CLI), wasm-opt -Oz (binaryen from npm: Debian's produces modules that fail to
# load), then tsc. Expects the tools tests/web.sh installs.
set -euo pipefail
cd "$(dirname "$0")"
target=${CARGO_TARGET_DIR:-$PWD/../target}
module=$target/wasm32-unknown-unknown/wasm/sightline_wasm.wasm
gen=js/src/gen
bin=js/node_modules/.bin

[ -d js/node_modules ] || (cd js && npm ci --no-audit --no-fund --loglevel=error)
rm -rf "$gen" js/dist
mkdir -p "$gen"

cargo build --locked -p sightline-wasm --target wasm32-unknown-unknown --profile wasm
wasm-bindgen --target web --out-dir "$gen" --out-name sightline "$module"
# With its names, for the size bench's attribution (wasm-opt drops them).
cp "$gen/sightline_bg.wasm" "$target/sightline-web-named.wasm"
# Every feature wasm-bindgen's output uses, which wasm-opt must be told of.
features=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-multivalue --enable-reference-types)
"$bin/wasm-opt" -Oz "${features[@]}" "$gen/sightline_bg.wasm" -o "$gen/sightline_bg.wasm"

cargo build --locked -p sightline-wasm --target wasm32-unknown-unknown --profile wasm --features kit
wasm-bindgen --target web --out-dir "$gen" --out-name kit "$module"

(cd js && node_modules/.bin/tsc -p .)
mkdir -p js/dist/gen
cp "$gen"/*.js "$gen"/*.d.ts "$gen"/*.wasm js/dist/gen/

#!/usr/bin/env bash
# Swift: regenerates the Swift sources, C header and module map from the uniffi library and
# fails if the checked-in ones under bindings/swift/ differ (`--write` updates them). No
# Swift toolchain exists on these machines: the package is generated and checked current,
# never compiled or tested here. Runnable alone.
set -euo pipefail
cd "$(dirname "$0")/.."
target=$(realpath -m "${CARGO_TARGET_DIR:-$PWD/target}")
export CARGO_TARGET_DIR="$target"

printf '\n==> swift: generate from the library and compare with bindings/swift\n'
cargo build -q --release -p sightline-uniffi
generated=$(mktemp -d)
trap 'rm -rf "$generated"' EXIT
# libsightline_uniffi.so on Linux, .dylib on a Mac.
for lib in "$target"/release/libsightline_uniffi.{so,dylib}; do [ -f "$lib" ] && break; done
cargo run -q -p uniffi-bindgen -- generate --library "$lib" \
  --language swift --out-dir "$generated/raw" --no-format
# The SwiftPM layout: the Swift target, and the C module the Swift code imports.
mkdir -p "$generated/Sources/Sightline" "$generated/Sources/sightline_uniffiFFI/include"
mv "$generated/raw/sightline_uniffi.swift" "$generated/Sources/Sightline/Sightline.swift"
mv "$generated/raw/sightline_uniffiFFI.h" "$generated/Sources/sightline_uniffiFFI/include/"
mv "$generated/raw/sightline_uniffiFFI.modulemap" \
  "$generated/Sources/sightline_uniffiFFI/include/module.modulemap"

if [ "${1:-}" = "--write" ]; then
  rm -rf bindings/swift/Sources
  cp -r "$generated/Sources" bindings/swift/Sources
  echo "bindings/swift/Sources regenerated"
elif ! diff -r "$generated/Sources" bindings/swift/Sources; then
  echo "bindings/swift/Sources is stale: run bash tests/swift.sh --write and commit" >&2
  exit 1
else
  echo "bindings/swift/Sources is current ($(wc -l < bindings/swift/Sources/Sightline/Sightline.swift) lines of Swift)"
fi

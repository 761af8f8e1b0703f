#!/usr/bin/env bash
# Builds sightline_uniffiFFI.xcframework for Package.swift. Needs a Mac with Xcode and the
# Rust targets below; NOT run or tested on this project's Linux machines.
set -euo pipefail
cd "$(dirname "$0")/../.."
# tvOS (aarch64-apple-tvos) is a tier 3 Rust target without a prebuilt std: add it with a
# nightly toolchain and `-Zbuild-std` (`cargo +nightly rustc -Zbuild-std ...`).
targets=(aarch64-apple-ios aarch64-apple-ios-sim aarch64-apple-darwin)
target_dir="${CARGO_TARGET_DIR:-target}"
for t in "${targets[@]}"; do
  rustup target add "$t"
  cargo rustc --release -p sightline-uniffi --target "$t" --crate-type staticlib
done
headers=$(mktemp -d)
cp bindings/swift/Sources/sightline_uniffiFFI/include/* "$headers/"
args=()
for t in "${targets[@]}"; do
  args+=(-library "$target_dir/$t/release/libsightline_uniffi.a" -headers "$headers")
done
rm -rf bindings/swift/sightline_uniffiFFI.xcframework
xcodebuild -create-xcframework "${args[@]}" -output bindings/swift/sightline_uniffiFFI.xcframework

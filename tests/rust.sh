#!/usr/bin/env bash
# Rust: formatting, clippy, the wire-contract check, the no_std builds (the firmware image
# and its budgets are tests/firmware.sh), every Rust test (core with and without `compact`,
# collector, simulation, the conformance suite's Rust runner, the uniffi and C crates) and
# the benchmarks. Installs the rustup targets, components, protoc and the OpenSSL
# headers (for the bench's snowplow peer) a fresh machine lacks. Runnable alone.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/debian.sh

step() { printf '\n==> rust: %s\n' "$*"; }

step "toolchain"
installed_targets=$(rustup target list --installed)
for t in wasm32-unknown-unknown thumbv7em-none-eabihf; do
  grep -qx "$t" <<<"$installed_targets" || rustup target add "$t"
done
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
command -v protoc >/dev/null || debian_install protobuf-compiler
# `ss` reads the collector's listen queue in the attack tests.
command -v ss >/dev/null || debian_install iproute2
# The bench's snowplow_tracker peer links OpenSSL (through reqwest's native-tls).
mapfile -t missing < <(debian_missing libssl-dev pkg-config)
[ ${#missing[@]} -eq 0 ] || debian_install "${missing[@]}"

step "format and lints"
cargo fmt --all -- --check
# sightline-wasm turns on the core's `compact` feature; in one build with the rest it would
# switch every crate's core to it (cargo unifies features), so it builds on its own.
cargo clippy --workspace --exclude sightline-wasm --all-targets -- -D warnings
cargo clippy -q -p sightline-wasm --all-targets -- -D warnings
cargo clippy -q -p sightline-core --features compact --all-targets -- -D warnings
# The C ABI's firmware build: no std, the firmware's allocator. Cargo's note that the
# target has no cdylib is expected; any other output fails.
lints=$(cargo clippy -q -p sightline-c --no-default-features --features firmware \
  --target thumbv7em-none-eabihf -- -D warnings 2>&1) || { echo "$lints"; exit 1; }
if grep -v -e 'dropping unsupported crate type `cdylib`' -e '^$' <<<"$lints"; then exit 1; fi

step "wire contract: generated code matches core/proto"
cargo run -q -p sightline-protogen -- --check

step "no_std: the core builds without std for a microcontroller and for wasm"
cargo build -q -p sightline-core --no-default-features --target thumbv7em-none-eabihf
cargo build -q -p sightline-core --no-default-features --target wasm32-unknown-unknown
cargo build -q -p sightline-core --no-default-features --features compact --target thumbv7em-none-eabihf

step "tests"
cargo test --workspace --exclude sightline-wasm
cargo test -p sightline-wasm
cargo test -p sightline-core --features compact

step "benchmarks (figures printed, not asserted)"
cargo run -q --release -p sightline-examples --bin bench
cargo bench -q -p sightline-collector --bench ingest
SOAK_SECONDS=5 cargo bench -q -p sightline-collector --bench soak
cargo run -q --release -p sightline-uniffi --example bench_record

#!/usr/bin/env bash
# Fuzzing: every cargo-fuzz target in fuzz/ (the batch decoder, the logger resuming from
# arbitrary stored data, the contract parser, the check CLI's readers, the collector's
# ingest path) runs for SIGHTLINE_FUZZ_SECONDS (60 by default; set it higher for a longer
# run) from the checked-in seeds. Any crash, timeout or out-of-memory fails. Installs the
# nightly toolchain and cargo-fuzz when missing. Runnable alone.
#
# The seeds are copied to a temporary directory first, so libFuzzer's corpus growth and
# crash artifacts never land in the tree: a crash is printed with its input's path.
set -euo pipefail
cd "$(dirname "$0")/.."
target=$(realpath -m "${CARGO_TARGET_DIR:-$PWD/target}")
export CARGO_TARGET_DIR="$target"
seconds=${SIGHTLINE_FUZZ_SECONDS:-60}

step() { printf '\n==> fuzz: %s (%s)\n' "$*" "$(date +%T)"; }

step "toolchain"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

step "format"
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

step "build (address sanitizer, debug assertions and overflow checks)"
cargo +nightly fuzz build

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Per input: 10 s is far above the slowest seed (milliseconds), so only a hang trips it.
# Memory: every decoder caps what it allocates (1 MiB decoded batches, 1 MiB frames,
# bounded tables and row budgets), so one input needs tens of MiB at most; the processes
# settle near 450 MiB because ASan keeps 256 MiB of freed memory in quarantine. 1 GiB
# (also libFuzzer's per-allocation limit) leaves room for that, and an uncapped
# allocation or a leak still trips it within seconds.
fuzz_one() {
  local t=$1
  step "$t for ${seconds} s"
  mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
  cp fuzz/corpus/"$t"/* "$work/$t/corpus/"
  # TMPDIR: check_inputs writes its files under the temporary directory, removed at exit.
  TMPDIR="$work" cargo +nightly fuzz run "$t" "$work/$t/corpus" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
    -artifact_prefix="$work/$t/artifacts/" -print_final_stats=1 2>"$work/$t.log" || {
    tail -n 60 "$work/$t.log"
    # Keep the crashing input where a developer (or CI's log) can find it.
    mkdir -p "$target/fuzz-artifacts/$t"
    cp "$work/$t/artifacts/"* "$target/fuzz-artifacts/$t/" 2>/dev/null || true
    echo "fuzz: $t failed; its input is in $target/fuzz-artifacts/$t" >&2
    return 1
  }
  printf '%s: %s\n' "$t" "$(grep -E '^stat::number_of_executed_units' "$work/$t.log" | tail -n 1)"
}
export -f fuzz_one step
export work seconds target
# One fuzzer per core at a time (each is single-threaded): the same time per target, in
# less wall time. xargs fails if any target failed.
cargo +nightly fuzz list | xargs -P "${SIGHTLINE_FUZZ_JOBS:-$(nproc)}" -I{} bash -euo pipefail -c 'fuzz_one "$1"' _ {}

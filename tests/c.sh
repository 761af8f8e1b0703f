#!/usr/bin/env bash
# C: the header is current (cbindgen), the library builds through its CMake package and is
# installed to a prefix, the C test suite (API specs, ownership, the conformance scenarios
# through the C runner) runs under ctest with ASan + UBSan, then the TV event-loop example
# (add_subdirectory) and README.md's C quickstart (the std runtime) log to a real collector
# and must reconcile exactly. Installs cmake, pkg-config, cJSON, zlib and OpenSSL headers
# when missing. Runnable alone.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/debian.sh
root="$PWD"
target=$(realpath -m "${CARGO_TARGET_DIR:-$PWD/target}")
export CARGO_TARGET_DIR="$target"
build="$target/c-build"
# CMake trees remember their source directory: start clean (cargo's artifacts are kept).
rm -rf "$build"

step() { printf '\n==> c: %s (%s)\n' "$*" "$(date +%T)"; }

step "C toolchain and test libraries"
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v pkg-config >/dev/null || missing+=(pkg-config)
mapfile -t -O "${#missing[@]}" missing < <(debian_missing libcjson-dev zlib1g-dev libssl-dev)
[ ${#missing[@]} -eq 0 ] || debian_install "${missing[@]}"
cmake --version | sed -n 1p

step "the header is what cbindgen makes of the sources"
cargo run -q -p sightline-c-header -- --check

step "library: CMake package, built and installed to a prefix"
cmake -S bindings/c -B "$build/lib" -DSIGHTLINE_CARGO_TARGET_DIR="$target" >/dev/null
cmake --build "$build/lib"
cmake --install "$build/lib" --prefix "$build/prefix" >/dev/null
ls -l "$build/prefix/lib" | awk '/libsightline/ {print $5, $9}'

step "ctest: API specs, ownership and the conformance suite, under ASan + UBSan"
cmake -S bindings/c/tests -B "$build/tests" -DCMAKE_PREFIX_PATH="$build/prefix" >/dev/null
cmake --build "$build/tests" -j2
ctest --test-dir "$build/tests" -j2 --output-on-failure

collector_bin="$target/debug/sightline-collector"
cargo build -q -p sightline-collector
work=$(mktemp -d)
collector_pid=""
trap '[ -z "$collector_pid" ] || kill "$collector_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
start_collector() {
  "$collector_bin" serve --listen 127.0.0.1:0 --micro --app-key key-1 >"$work/collector.out" 2>"$work/collector.err" &
  collector_pid=$!
  for _ in $(seq 100); do grep -q '^listening on ' "$work/collector.out" && break; sleep 0.1; done
  addr=$(sed -n 's/^listening on //p' "$work/collector.out")
  [ -n "$addr" ] || { cat "$work/collector.err"; echo "the collector did not start" >&2; exit 1; }
}
stop_collector() { kill "$collector_pid"; wait "$collector_pid" 2>/dev/null || true; collector_pid=""; }
# Every good row at the collector belongs to session $1, there are $2 of them, no bad row,
# and the session reconciles: issued = delivered = $2, nothing missing.
reconciles() {
  curl -sf "http://$addr/micro/good" >"$work/good.json"
  curl -sf "http://$addr/micro/bad" >"$work/bad.json"
  curl -sf "http://$addr/micro/sessions" >"$work/sessions.json"
  python3 - "$1" "$2" "$work" <<'PY'
import json, sys
session, expected, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
good = json.load(open(f"{work}/good.json"))
bad = json.load(open(f"{work}/bad.json"))
acc = json.load(open(f"{work}/sessions.json"))[session]
assert bad == [], bad
assert len(good) == expected and {r["session_id"] for r in good} == {session}, good
got = (acc["issued"], acc["delivered"], acc["missing"], acc["duplicates"])
assert got == (expected, expected, 0, 0), acc
print(f"collector: {expected} good rows, session {session} reconciles (issued = delivered, none missing)")
PY
}

step "examples/c: the TV event loop (sans-IO, add_subdirectory) against a real collector"
cmake -S examples/c -B "$build/example" -DSIGHTLINE_CARGO_TARGET_DIR="$target" >/dev/null
cmake --build "$build/example" >/dev/null
start_collector
"$build/example/tv_loop" "http://$addr" "$work/tv" | tee "$work/tv.out"
report=$(tail -n 1 "$work/tv.out")
session=${report##*session=}
expected=$(sed -E 's/^expected=([0-9]+).*/\1/' <<<"$report")
reconciles "$session" "$expected"
stop_collector

step "README.md's C quickstart (the std runtime) against a real collector"
{
  echo '#include <stdio.h>'
  echo '#include <unistd.h>'
  echo '#include "sightline.h"'
  echo 'int main(int argc, char **argv) {'
  echo '    if (argc != 3) return 2;'
  sed -n '/<!-- quickstart:c -->/,/^```$/p' README.md | sed '1,2d;$d' |
    sed -e 's|"https://collector.example.com"|argv[1]|' -e 's|"/var/lib/mytv/sightline"|argv[2]|' \
      -e 's|"your-collector-key"|"key-1"|' -e 's/^/    /'
  echo '    return 0;'
  echo '}'
} >"$work/quickstart.c"
grep -q 'sightline_runtime_start' "$work/quickstart.c" || { echo "README.md has no C quickstart" >&2; exit 1; }
cc -std=c11 -Wall -Wextra -Werror -DSIGHTLINE_STD -I"$build/prefix/include" "$work/quickstart.c" \
  "$build/prefix/lib/libsightline_c.a" -lpthread -ldl -lm -o "$work/quickstart"
start_collector
"$work/quickstart" "http://$addr" "$work/quickstart-data"
session=$(python3 -c 'import json,sys; print(next(iter(json.load(open(sys.argv[1])))))' <(curl -sf "http://$addr/micro/sessions"))
reconciles "$session" 1
stop_collector

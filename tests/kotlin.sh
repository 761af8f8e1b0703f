#!/usr/bin/env bash
# Kotlin/JVM: builds the release cdylib, uniffi-bindgen and the collector, generates the
# Kotlin binding, packages the native library inside the jar (where JNA finds it), runs
# `mvn verify` (JUnit 5 specs, producer kit, conformance suite; warnings are errors), then
# the example app against a real collector and the benchmark from the installed jar.
# Runnable alone from a clean checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/debian.sh
root="$PWD"
target=$(realpath -m "${CARGO_TARGET_DIR:-$PWD/target}")
export CARGO_TARGET_DIR="$target"
module="$root/bindings/kotlin"

step() { printf '\n==> kotlin: %s (%s)\n' "$*" "$(date +%T)"; }

step "JDK and Maven"
java_major() { javac -version 2>&1 | sed -E 's/^javac ([0-9]+).*/\1/'; }
if ! command -v mvn >/dev/null || ! command -v javac >/dev/null || ! command -v unzip >/dev/null \
  || [ "$(java_major)" -lt 17 ]; then
  debian_install openjdk-17-jdk-headless maven unzip
fi
java -version 2>&1 | sed -n 1p
mvn -v 2>/dev/null | sed -n 1p

step "the native library (release), uniffi-bindgen and the collector"
cargo build -q -p sightline-uniffi --release
cargo build -q -p uniffi-bindgen
cargo build -q -p sightline-collector
lib="$target/release/libsightline_uniffi.so"
collector="$target/debug/sightline-collector"
export SIGHTLINE_COLLECTOR="$collector"

step "generate the Kotlin binding"
generated="$module/target/generated-sources/uniffi"
rm -rf "$generated"
cargo run -q -p uniffi-bindgen -- generate --library "$lib" --language kotlin \
  --out-dir "$generated" --no-format --config "$module/uniffi.toml"
native="$module/target/generated-resources/native/linux-x86-64"
rm -rf "$native" && mkdir -p "$native"
cp "$lib" "$native/"

step "the README's Kotlin quickstart, as a function the tests call"
quickstart="$module/target/generated-test-sources/quickstart"
rm -rf "$quickstart" && mkdir -p "$quickstart"
{
  echo "package dev.sightline"
  echo
  echo "/** README.md's Kotlin quickstart, with the collector and directory of a test. */"
  echo "fun readmeQuickstart(endpoint: String, dataDir: String) {"
  sed -n '/<!-- quickstart:kotlin -->/,/^```$/p' README.md | sed '1,2d;$d' |
    sed -e 's|"https://collector.example.com"|endpoint|' -e 's|"/var/lib/myapp/sightline"|dataDir|' \
      -e 's|"your-collector-key"|"key-1"|' -e 's/^/    /'
  echo "}"
} >"$quickstart/Quickstart.kt"
grep -q 'Sightline.start' "$quickstart/Quickstart.kt" || { echo "README.md has no Kotlin quickstart" >&2; exit 1; }

step "mvn verify"
start=$(date +%s)
(cd "$module" && mvn -q -B verify -Dsightline.collector="$collector")
echo "mvn verify: $(( $(date +%s) - start )) s"
jar="$module/target/sightline-0.1.0.jar"
so_in_jar=$(unzip -l "$jar" linux-x86-64/libsightline_uniffi.so | awk '/libsightline_uniffi/ {print $1}')
echo "$jar: $(( $(stat -c %s "$jar") / 1024 )) KiB, libsightline_uniffi.so inside: $(( so_in_jar / 1024 )) KiB"
reports="$module/target/surefire-reports"
cat "$reports"/*.txt | awk '/Tests run:/ {r+=$3; f+=$5; e+=$7; s+=$9} END {printf "%d passed, %d failed\n", r-f-e-s, f+e}' FS='[ ,]+'

step "install the jar into the local Maven repository (for the example app)"
(cd "$module" && mvn -q -B install:install-file -Dfile="$jar" -DpomFile=pom.xml)

step "example app against a real collector"
work=$(mktemp -d)
"$collector" serve --listen 127.0.0.1:0 --micro --app-key key-1 >"$work/collector.out" 2>"$work/collector.err" &
collector_pid=$!
trap 'kill "$collector_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q '^listening on ' "$work/collector.out" && break; sleep 0.1; done
addr=$(sed -n 's/^listening on //p' "$work/collector.out")
[ -n "$addr" ] || { cat "$work/collector.err"; echo "the collector did not start" >&2; exit 1; }
(cd examples/kotlin && mvn -q -B compile exec:exec -Dexec.args="http://$addr $work/data")
kill "$collector_pid"
wait "$collector_pid" 2>/dev/null || true

step "benchmark (figures printed, not asserted)"
baseline=$(cargo run -q --release -p sightline-uniffi --example bench_record | grep "^BASELINE")
(cd examples/kotlin && mvn -q -B exec:exec -Dexec.mainClass=dev.sightline.examples.BenchKt \
  -Dexec.args="$baseline")

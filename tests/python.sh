#!/usr/bin/env bash
# Python: builds the wheel with maturin, installs it in a fresh virtualenv (never the build
# tree), lints and type-checks the package, tests and examples, then runs pytest (the
# binding's specs, the producer kit, the conformance suite, the README quickstart and the
# example app against a real collector), then the benchmark. Runnable alone.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/debian.sh
target=$(realpath -m "${CARGO_TARGET_DIR:-$PWD/target}")
export CARGO_TARGET_DIR="$target"

step() { printf '\n==> python: %s\n' "$*"; }

step "build tools (maturin, ruff, mypy) in $target/pytools"
python3 -c 'import ensurepip, venv' 2>/dev/null || debian_install python3-venv
tools="$target/pytools"
[ -x "$tools/bin/pip" ] || python3 -m venv "$tools"
# Pinned, so a new release cannot change the lint verdict or the wheel under us.
for tool in maturin==1.16.0 ruff==0.17.6 mypy==2.4.1; do
  [ -x "$tools/bin/${tool%%=*}" ] || "$tools/bin/pip" install -q "$tool"
done

step "the collector the tests start on loopback"
cargo build -q -p sightline-collector
export SIGHTLINE_COLLECTOR="$target/debug/sightline-collector"

step "wheel"
rm -rf "$target/wheels"
(cd bindings/python && "$tools/bin/maturin" build -q --out "$target/wheels")
wheel=$(ls "$target"/wheels/sightline-*.whl)
echo "$wheel ($(du -k "$wheel" | cut -f1) KiB)"

step "fresh virtualenv with the wheel installed"
venv="$target/py-test-venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q pytest==9.2.0 "$wheel"

step "lint and types"
ruff_config=bindings/python/pyproject.toml
# Also the repository's other Python: the firmware's size script.
"$tools/bin/ruff" check --config "$ruff_config" bindings/python examples/python examples/firmware
"$tools/bin/ruff" format --check --config "$ruff_config" bindings/python examples/python examples/firmware
# The tests are left out: mypy cannot see the error and enum variants uniffi generates.
"$tools/bin/mypy" --python-executable "$venv/bin/python" --strict \
  bindings/python/python/sightline/__init__.py bindings/python/python/sightline/testing.py \
  examples/python examples/firmware/size.py

step "pytest against the installed wheel"
# Run from outside the source tree so `import sightline` can only find the installed wheel.
(cd "$target" && "$venv/bin/python" -m pytest -q -p no:cacheprovider "$OLDPWD/bindings/python/tests")

step "benchmark beside native Rust, same run (figures printed, not asserted)"
baseline=$(cargo run -q --release -p sightline-uniffi --example bench_record | grep "^BASELINE")
"$venv/bin/python" bindings/python/bench.py "$baseline"

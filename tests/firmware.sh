#!/usr/bin/env bash
# Firmware: the C ABI built for thumbv7em-none-eabihf without std, linked by
# arm-none-eabi-gcc into the bare-metal example (examples/firmware), run on QEMU's
# mps2-an386 (Cortex-M4F); the host decodes every upload body the firmware printed and
# checks each impression and the accounting (firmware_check), then the flash and heap
# figures are printed against their budgets (64 KiB, 96 KiB). Installs the rustup target,
# gcc-arm-none-eabi, newlib and qemu-system-arm when missing. Runnable alone.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/debian.sh
root="$PWD"
target=$(realpath -m "${CARGO_TARGET_DIR:-$PWD/target}")
export CARGO_TARGET_DIR="$target"
build="$target/firmware-build"
# CMake trees remember their source directory: start clean (cargo's artifacts are kept).
rm -rf "$build"

step() { printf '\n==> firmware: %s (%s)\n' "$*" "$(date +%T)"; }

step "cross toolchain and emulator"
rustup target list --installed | grep -qx thumbv7em-none-eabihf || rustup target add thumbv7em-none-eabihf
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v qemu-system-arm >/dev/null || missing+=(qemu-system-arm)
mapfile -t -O "${#missing[@]}" missing < <(debian_missing gcc-arm-none-eabi libnewlib-arm-none-eabi)
[ ${#missing[@]} -eq 0 ] || debian_install "${missing[@]}"
arm-none-eabi-gcc --version | sed -n 1p
qemu-system-arm --version | sed -n 1p

step "build: the no_std C ABI (profile firmware) and the C firmware"
cmake -S examples/firmware -B "$build" -DCMAKE_TOOLCHAIN_FILE="$root/examples/firmware/arm-none-eabi.cmake" >/dev/null
cmake --build "$build"

step "run on QEMU mps2-an386, semihosting"
out="$build/qemu.out"
# The session is scripted on the firmware's own clock: it runs in well under a second.
rm -f "$out"
timeout 120 qemu-system-arm -M mps2-an386 -nographic -kernel "$build/firmware.elf" \
  -chardev file,id=semihosting,path="$out" -semihosting-config enable=on,target=native,chardev=semihosting
grep -E '^(STATS|DONE)' "$out"

step "the host decodes and checks every upload"
cargo run -q -p sightline-examples --bin firmware_check -- "$out"

step "flash against the budget"
# Issue 10's budget for core + C ABI: growth beyond it fails.
python3 examples/firmware/size.py "$build/firmware.map" --ceiling 65536

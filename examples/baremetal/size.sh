#!/usr/bin/env bash
# Builds the bare-metal probe (release, thumbv7em-none-eabihf) and prints its flash size,
# then runs the same pipeline on the host under a counting allocator (heap/) for its peak
# heap, both against issue 10's firmware budgets. Exits non-zero if a build fails, no
# section tool is found, or either figure is over its budget.
# Uses $CARGO_TARGET_DIR when set, else this crate's own target/ directory.
set -euo pipefail

TARGET=thumbv7em-none-eabihf
# Flash (text + rodata + data) for the core and its C ABI layer together: 64 KiB.
FLASH_BUDGET=65536
# Peak heap of the reference session: 96 KiB.
HEAP_BUDGET=98304
cd "$(dirname "$0")" # cargo reads .cargo/config.toml (linker script flags) from the cwd.
here=$PWD
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$here/$target_dir ;; esac

cargo build --release --target "$TARGET"
elf=$target_dir/$TARGET/release/sightline-baremetal

# Emit "name size" (decimal) per section with whichever tool exists; llvm-size first.
sections() {
    if command -v llvm-size >/dev/null; then
        llvm-size -A "$elf" | awk '$1 ~ /^\./ { print $1, $2 }'
    elif command -v readelf >/dev/null; then
        # "[Nr] Name Type Addr Off Size ..." with a hex size; "[ 1]" holds a space, so cut it.
        readelf -SW "$elf" | sed -n 's/^ *\[ *[0-9]*\] //p' |
            while read -r name _type _addr _off size _; do echo "$name $((16#$size))"; done
    elif command -v size >/dev/null; then
        size -A "$elf" | awk '$1 ~ /^\./ { print $1, $2 }'
    else
        echo "size.sh: need llvm-size, readelf or size" >&2
        return 1
    fi
}

table=$(sections)
get() { awk -v s="$1" '$1 == s { n += $2 } END { print n + 0 }' <<<"$table"; }
text=$(get .text)
rodata=$(get .rodata)
data=$(get .data) # initialised statics: copied from flash at boot, so they count.
flash=$((text + rodata + data))
echo "baremetal code size: text=$text rodata=$rodata data=$data total_flash=$flash bytes"

# The host's triple: the heap run is a host program (the probe only links, it never runs).
host=$(rustc -vV | sed -n 's/^host: //p')
heap_peak=$(cargo run -q --release --manifest-path heap/Cargo.toml --target "$host" --target-dir "$target_dir")

echo "flash=$flash/$FLASH_BUDGET heap_peak=$heap_peak/$HEAP_BUDGET"
over=0
if ((flash > FLASH_BUDGET)); then
    echo "size.sh: flash is $((flash - FLASH_BUDGET)) bytes over budget" >&2
    over=1
fi
if ((heap_peak > HEAP_BUDGET)); then
    echo "size.sh: peak heap is $((heap_peak - HEAP_BUDGET)) bytes over budget" >&2
    over=1
fi
exit "$over"

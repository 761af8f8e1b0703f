#!/usr/bin/env bash
# Builds the bare-metal probe (release, thumbv7em-none-eabihf) and prints its code size.
# Exits non-zero if the build fails or no section tool is found.
# Uses $CARGO_TARGET_DIR when set, else this crate's own target/ directory.
set -euo pipefail

TARGET=thumbv7em-none-eabihf
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
echo "baremetal code size: text=$text rodata=$rodata total_flash=$((text + rodata + data)) bytes"

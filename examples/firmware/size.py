#!/usr/bin/env python3
"""Flash of the firmware image by owner, from the linker's map file:

    size.py build/fw/firmware.map [--ceiling BYTES]

Sightline's share (core + C ABI: every input section that came from libsightline_c.a,
Rust's compiler builtins included) is compared with the 64 KiB budget; the firmware's own
code and newlib's (malloc, memcpy) are listed beside it. Exits 1 if the map cannot be read
or Sightline's share is above the ceiling.
"""

from __future__ import annotations

import re
import sys
from collections import Counter

FLASH_BUDGET = 64 * 1024  # issue 10: core + C ABI on a set-top box's flash


def owner(path: str) -> str:
    if "libsightline_c.a" in path:
        return "sightline"
    if re.search(r"lib(c|g)_nano|libnosys|libgcc|libm\.a", path):
        return "newlib"
    return "firmware"


def flash_by_owner(map_text: str) -> Counter[tuple[str, str]]:
    """(owner, section kind) -> bytes, for the sections that take flash."""
    lines = map_text.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.startswith("Linker script and memory map")
    )
    sizes: Counter[tuple[str, str]] = Counter()
    pending = None  # a section name whose address and size are on the next line
    for line in lines[start:]:
        one = re.match(
            r"^ (\.(?:vectors|text|rodata|data)\S*)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+)",
            line,
        )
        if one:
            name, size, path = one.group(1), int(one.group(2), 16), one.group(3)
        elif pending and (two := re.match(r"^\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+)", line)):
            name, size, path = pending, int(two.group(1), 16), two.group(2)
        else:
            alone = re.match(r"^ (\.(?:vectors|text|rodata|data)\S*)\s*$", line)
            pending = alone.group(1) if alone else None
            continue
        pending = None
        kind = next(k for k in ("vectors", "text", "rodata", "data") if name.startswith("." + k))
        sizes[(owner(path), kind)] += size
    return sizes


def main() -> int:
    args = sys.argv[1:]
    ceiling = None
    if len(args) == 3 and args[1] == "--ceiling" and args[2].isdigit():
        ceiling = int(args[2])
        args = args[:1]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(args[0]) as map_file:
            sizes = flash_by_owner(map_file.read())
    except (OSError, StopIteration) as e:
        print(f"size.py: cannot read the map {args[0]}: {e}", file=sys.stderr)
        return 1
    for who in ("sightline", "firmware", "newlib"):
        parts = {kind: n for (w, kind), n in sizes.items() if w == who}
        detail = " ".join(f"{kind}={n}" for kind, n in sorted(parts.items()))
        print(f"flash {who}: {sum(parts.values())} B ({detail})")
    ours = sum(n for (w, _), n in sizes.items() if w == "sightline")
    verdict = "within" if ours <= FLASH_BUDGET else f"OVER by {ours - FLASH_BUDGET} B"
    print(f"flash budget: Sightline (core + C ABI) {ours} of {FLASH_BUDGET} B, {verdict}")
    print(f"flash image total: {sum(sizes.values())} B")
    if ceiling is not None and ours > ceiling:
        print(
            f"size.py: Sightline's flash {ours} B is above the ceiling {ceiling} B",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

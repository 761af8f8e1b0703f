"""A small app: a user browses three pages of a catalogue; Sightline logs what they saw.

    python examples/python/app.py http://127.0.0.1:8080 /tmp/sightline-app

Visibility is reported the way a UI toolkit reports it (a share of each tile on screen,
changing as the user scrolls); the SDK decides what counts as an impression. Prints the
session id and what was logged, one JSON object on the last line.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

import sightline

PAGES = {
    "home": [["title:1", "title:2", "title:3"], ["title:4", "title:5"]],
    "search": [["title:7", "title:8"]],
    "details": [["title:2"]],
}


def browse(log: sightline.Sightline) -> int:
    """Shows every tile of each page for 1.2 s (an impression each), and one tile of the
    home page only half a second (not one). Returns the impressions expected."""
    expected = 0
    for page, rows in PAGES.items():
        pv = log.start_page_view(page, f"req-{page}", rows)
        tiles = [
            sightline.Item(item_id=item_id, row=r, column=c)
            for r, row in enumerate(rows)
            for c, item_id in enumerate(row)
        ]
        for tile in tiles:
            log.visibility(pv, tile, 1.0)
        time.sleep(1.2)
        for tile in tiles:
            log.visibility(pv, tile, 0.0)
        expected += len(tiles)
        if page == "home":
            glimpse = tiles[0]
            log.visibility(pv, glimpse, 0.8)
            time.sleep(0.5)
            log.visibility(pv, glimpse, 0.0)
        log.end_page_view(pv)
    return expected


def main() -> None:
    endpoint = sys.argv[1]
    data_dir = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="sightline-app-")
    config = sightline.Config(
        app_id="com.example.catalogue",
        app_version="2.1.0",
        platform=sightline.Platform.ANDROID,
        app_key="key-1",
        device="example-phone",
    )
    with sightline.start(config, data_dir, endpoint) as log:
        expected = browse(log)
        log.app_hidden()
        session = log.session_id()
    stats = log.stats()
    print(f"session {session}: {stats.delivered} of {expected} impressions delivered")
    print(json.dumps({"session": session, "expected": expected, "delivered": stats.delivered}))


if __name__ == "__main__":
    main()

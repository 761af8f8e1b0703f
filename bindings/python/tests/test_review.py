"""Review: Sightline.close() racing another thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import sightline
from conftest import config, exposure
from sightline import Upload, UploadOutcome


class SlowTransport(sightline.Transport):
    """Answers 200 after a while, so a shutdown takes that long."""

    def send(self, upload: Upload) -> UploadOutcome:
        time.sleep(0.5)
        return UploadOutcome.STATUS(code=200, retry_after=None)


def test_two_threads_closing_at_once_both_get_the_final_counters(tmp_path: Path) -> None:
    # "Closing twice returns the same ones": also when the second close comes from another
    # thread (a with-block exit racing the atexit hook, or two owners), while the first is
    # still delivering.
    log = sightline.start(config(), str(tmp_path), transport=SlowTransport())
    pv = log.start_page_view("home")
    log.record_impression(pv, exposure(log, "title:1"))
    results: list[object] = []

    def close() -> None:
        try:
            results.append(log.close(wait_ms=5_000))
        except Exception as e:  # noqa: BLE001
            results.append(e)

    first = threading.Thread(target=close)
    first.start()
    time.sleep(0.1)  # the first close is inside runtime.shutdown, waiting on the upload
    close()
    first.join()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"a concurrent close raised: {errors!r}"
    assert results[0] == results[1]

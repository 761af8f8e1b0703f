"""The ready runtime from Python, against a real collector on loopback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import sightline
from conftest import config, exposure, quick_contract
from sightline import Item, SightlineError, Upload, UploadOutcome
from sightline.testing import MicroCollector


def test_a_with_block_delivers_everything_on_exit_and_the_collector_reconciles_exactly(
    collector: MicroCollector, tmp_path: Path
) -> None:
    with sightline.start(config(), str(tmp_path), collector.url) as log:
        pv = log.start_page_view("home", "req-1", [["title:1", "title:2"]])
        for column, item_id in enumerate(["title:1", "title:2"]):
            assert isinstance(
                log.record_impression(pv, exposure(log, item_id, 0, column)),
                sightline.Recorded.LOGGED,
            )
        session = log.session_id()
    assert log.closed
    final = log.stats()
    assert (final.delivered, final.pending) == (2, 0)
    rows = collector.good()
    assert sorted(r["item_id"] for r in rows) == ["title:1", "title:2"]
    assert {r["request_id"] for r in rows} == {"req-1"}
    accounting = collector.sessions()[session]
    assert (accounting["issued"], accounting["delivered"], accounting["missing"]) == (2, 2, 0)
    with pytest.raises(SightlineError.Stopped):
        log.runtime.flush()
    assert log.close() == final, "closing twice returns the same counters"


def test_the_interpreter_exiting_without_close_still_delivers_through_atexit(
    collector: MicroCollector, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        f"""
        import time
        import sightline
        config = sightline.Config(app_id="com.example.py", app_version="1.0.0",
                                  platform=sightline.Platform.ANDROID, app_key="key-1")
        log = sightline.start(config, {str(tmp_path)!r}, {collector.url!r})
        pv = log.start_page_view("home")
        start = log.now_mono_ms()
        time.sleep(1.0)
        imp = sightline.QualifiedImpression(
            item=sightline.Item(item_id="title:atexit", row=0, column=0),
            first_visible_mono_ms=start, visible_ms=1000, max_visible_fraction=1.0)
        log.record_impression(pv, imp)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert [r["item_id"] for r in collector.good()] == ["title:atexit"]


class RecordingTransport(sightline.Transport):
    """The app's own HTTP stack: here it fails once with an exception, then answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.calls = 0

    def send(self, upload: Upload) -> UploadOutcome:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("the app's HTTP stack failed")
        self.bodies.append(bytes(upload.body))
        return UploadOutcome.STATUS(code=200, retry_after=None)


def test_a_foreign_transport_replaces_http_and_its_exception_counts_as_a_network_error(
    tmp_path: Path,
) -> None:
    transport = RecordingTransport()
    log = sightline.start(
        config(retry_base_ms=20, retry_max_ms=50), str(tmp_path), transport=transport
    )
    pv = log.start_page_view("home")
    log.record_impression(pv, exposure(log, "title:1"))
    final = log.close(wait_ms=5_000)
    assert (final.delivered, final.retries) == (1, 1)
    assert transport.calls == 2
    kit = sightline.Capture(quick_contract())
    kit.receive(transport.bodies[0])
    kit.assert_impression("title:1", 0, 0)


def test_eight_threads_recording_through_the_runtime_reconcile_exactly_at_the_collector(
    collector: MicroCollector, tmp_path: Path
) -> None:
    with sightline.start(config(), str(tmp_path), collector.url) as log:
        pv = log.start_page_view("home")

        def record(thread: int) -> None:
            seen = exposure(log, "unused")
            for i in range(100):
                seen.item = Item(item_id=f"title:{thread}-{i}", row=thread, column=i)
                log.record_impression(pv, seen)

        threads = [threading.Thread(target=record, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        session = log.session_id()
    rows = collector.good()
    assert len(rows) == 800
    assert len({r["seq"] for r in rows}) == 800
    accounting = collector.sessions()[session]
    assert (accounting["issued"], accounting["delivered"], accounting["missing"]) == (800, 800, 0)


def test_a_data_dir_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SightlineError.Store):
        sightline.start(config(), str(blocker / "store"), "http://127.0.0.1:9")


class SlowTransport(sightline.Transport):
    """Answers 200 after a while, so a shutdown takes that long."""

    def send(self, upload: Upload) -> UploadOutcome:
        time.sleep(0.5)
        return UploadOutcome.STATUS(code=200, retry_after=None)


def test_two_threads_closing_at_once_both_get_the_final_counters(tmp_path: Path) -> None:
    """A with-block exit racing the atexit hook, or two owners: the second close waits for
    the first, still delivering, and returns the same counters."""
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

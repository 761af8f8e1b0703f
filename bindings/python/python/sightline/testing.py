"""The producer test kit: fail a unit test when the app logs the wrong thing.

``captured(config)`` runs the real runtime with uploads kept in memory; the capture
decodes them with the core, runs the contract's checks and the per-session accounting,
and its assertions raise :class:`AssertionError` with a message naming the rule, the item
and the position::

    with sightline.testing.captured(config) as (log, kit):
        pv = log.start_page_view("home", layout=[["title:1"]])
        ...
    kit.assert_impression("title:1", row=0, column=0)
    kit.assert_no_violations()

:class:`MicroCollector` is a client for the collector's micro mode (``serve --micro``), the
integration-test option: real HTTP, rows kept in memory behind a small JSON API.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, TypeVar

from . import DEFAULT_SHUTDOWN_WAIT_MS, Sightline
from ._native.sightline_uniffi import (
    Accounting,
    Capture,
    CapturedImpression,
    Config,
    KitError,
    Receipt,
    Runtime,
    Violation,
)

__all__ = ["CaptureKit", "MicroCollector", "captured"]

T = TypeVar("T")

# uniffi nests error variants in their class at run time, where mypy cannot see them.
_FAILED: type[Exception] = KitError.Failed  # type: ignore[attr-defined]


def _asserting(call: Callable[[], T]) -> T:
    try:
        return call()
    except _FAILED as failure:
        raise AssertionError(getattr(failure, "message", str(failure))) from None


class CaptureKit:
    """The core's capture with Python's assertion style (:class:`AssertionError`)."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture

    def receive(self, body: bytes) -> Receipt:
        """Receives an upload body (for apps driving the sans-IO ``Logger`` themselves)."""
        return self.capture.receive(body)

    def impressions(self) -> list[CapturedImpression]:
        return self.capture.impressions()

    def violations(self) -> list[Violation]:
        return self.capture.violations()

    def accounting(self) -> list[Accounting]:
        return self.capture.accounting()

    def uploads(self) -> int:
        return self.capture.uploads()

    def clear(self) -> None:
        self.capture.clear()

    def assert_impression(self, item_id: str, row: int, column: int) -> CapturedImpression:
        """Exactly one good impression of ``item_id`` at (``row``, ``column``)."""
        return _asserting(lambda: self.capture.assert_impression(item_id, row, column))

    def assert_no_impression(self, item_id: str) -> None:
        _asserting(lambda: self.capture.assert_no_impression(item_id))

    def assert_no_violations(self) -> None:
        _asserting(self.capture.assert_no_violations)

    def assert_violation(self, rule: str, item_id: str | None = None) -> None:
        """``rule`` (a stable name such as ``"too_short"``) was broken, by ``item_id``."""
        _asserting(lambda: self.capture.assert_violation(rule, item_id))

    def assert_accounted(self) -> None:
        """Every impression issued was delivered or dropped with a counted reason."""
        _asserting(self.capture.assert_accounted)


@contextmanager
def captured(
    config: Config, wait_ms: int = DEFAULT_SHUTDOWN_WAIT_MS
) -> Iterator[tuple[Sightline, CaptureKit]]:
    """The real runtime over a memory store, its uploads going to a capture. On exit the
    runtime shuts down (flushing and delivering to the capture), so assertions made after
    the block see everything the app logged."""
    capture = Capture(config.contract)
    logger = Sightline(Runtime.start_captured(config, capture), wait_ms)
    try:
        yield logger, CaptureKit(capture)
    finally:
        logger.close()


class MicroCollector:
    """A client for a collector started with ``serve --micro`` at ``url``."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            body = response.read()
        return json.loads(body) if body else None

    def good(self) -> list[dict[str, Any]]:
        """Accepted rows, one per impression."""
        return list(self._call("GET", "/micro/good"))

    def bad(self) -> list[dict[str, Any]]:
        """Rows refused by the contract, each with the ``rules`` it broke."""
        return list(self._call("GET", "/micro/bad"))

    def sessions(self) -> dict[str, dict[str, Any]]:
        """Loss accounting by session id."""
        return dict(self._call("GET", "/micro/sessions"))

    def reset(self) -> None:
        self._call("POST", "/micro/reset")

    def wait_for_good(self, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Polls until at least ``count`` good rows arrived; raises :class:`AssertionError`
        with what did arrive otherwise."""
        deadline = time.monotonic() + timeout_s
        while True:
            rows = self.good()
            if len(rows) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if len(rows) < count:
            raise AssertionError(f"expected {count} good rows, {len(rows)} arrived: {rows}")
        return rows

"""Sightline impression logging for Python: the one Rust core, through uniffi.

Two ways in:

* :func:`start` runs the ready runtime (file store, HTTP, its own thread)::

      with sightline.start(config, data_dir, "https://collector.example.com") as log:
          pv = log.start_page_view("home")
          log.visibility(pv, sightline.Item(item_id="title:1", row=0, column=0), 1.0)

  Leaving the ``with`` block (or the interpreter exiting) flushes and delivers what it
  can within a bounded wait; what is not delivered stays in ``data_dir`` for next time.

* :class:`Logger` is the sans-IO core for apps that own their HTTP stack, storage and
  timers: pass inputs with :func:`now`, drain ``poll_store_op``, ``poll_upload`` and
  ``poll_timeout``, and report the results.

:mod:`sightline.testing` is the producer test kit (capture in memory, assertions) and a
client for the collector's micro mode.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from types import TracebackType

from ._native.sightline_uniffi import (
    Accounting,
    Capture,
    CapturedImpression,
    Config,
    Contract,
    Header,
    InternalError,
    Item,
    KitError,
    Logger,
    Now,
    Platform,
    QualifiedImpression,
    Receipt,
    Recorded,
    RecordedMany,
    Reentry,
    Refusal,
    Runtime,
    SampleKey,
    SightlineError,
    Stats,
    Stored,
    StoreFailure,
    StoreOp,
    StoreRequest,
    Transport,
    Upload,
    UploadOutcome,
    Violation,
    config_from_json,
    default_contract,
    rule_names,
    trigger_internal_error,
)

__all__ = [
    "Accounting",
    "Capture",
    "CapturedImpression",
    "Config",
    "Contract",
    "Header",
    "InternalError",
    "Item",
    "KitError",
    "Logger",
    "Now",
    "Platform",
    "QualifiedImpression",
    "Receipt",
    "Recorded",
    "RecordedMany",
    "Reentry",
    "Refusal",
    "Runtime",
    "SampleKey",
    "Sightline",
    "SightlineError",
    "Stats",
    "StoreFailure",
    "StoreOp",
    "StoreRequest",
    "Stored",
    "Transport",
    "Upload",
    "UploadOutcome",
    "Violation",
    "config_from_json",
    "default_contract",
    "now",
    "rule_names",
    "start",
    "trigger_internal_error",
]

#: How long leaving a ``with`` block or the interpreter's exit waits for delivery, by
#: default: long enough for one upload on a normal network, short enough not to hang an exit.
DEFAULT_SHUTDOWN_WAIT_MS = 3_000

_MONO_ORIGIN_NS = time.monotonic_ns()


def now() -> Now:
    """Both clocks for the sans-IO :class:`Logger`: monotonic milliseconds (since this module
    was imported) and wall-clock milliseconds since the Unix epoch."""
    return Now(
        mono_ms=(time.monotonic_ns() - _MONO_ORIGIN_NS) // 1_000_000,
        wall_ms=time.time_ns() // 1_000_000,
    )


class Sightline:
    """The ready runtime with Python's lifecycle: a context manager that shuts down (flush,
    bounded delivery) on exit, and an ``atexit`` hook doing the same for loggers still open
    when the interpreter exits. The methods are the runtime's."""

    def __init__(self, runtime: Runtime, shutdown_wait_ms: int = DEFAULT_SHUTDOWN_WAIT_MS) -> None:
        self.runtime = runtime
        self.shutdown_wait_ms = shutdown_wait_ms
        # Held for a whole close, so a close racing another (a with-block exit and the
        # atexit hook, two owners) waits for the first and returns its counters.
        self._closing = threading.Lock()
        self._final: Stats | None = None
        _open.add(self)

    def session_id(self) -> str:
        return self.runtime.session_id()

    def start_page_view(
        self,
        page: str,
        request_id: str | None = None,
        layout: list[list[str]] | None = None,
    ) -> int:
        """Starts a page view; ``layout`` is the rows of item ids as the server sent them."""
        return self.runtime.start_page_view(page, request_id, layout)

    def end_page_view(self, page_view: int) -> None:
        self.runtime.end_page_view(page_view)

    def visibility(self, page_view: int, item: Item, fraction: float) -> None:
        """The visible share (0.0 to 1.0) of an item changed."""
        self.runtime.visibility(page_view, item, fraction)

    def focus(self, page_view: int, item: Item, focused: bool) -> None:
        self.runtime.focus(page_view, item, focused)

    def app_hidden(self) -> None:
        self.runtime.app_hidden()

    def app_visible(self) -> None:
        self.runtime.app_visible()

    def record_impression(self, page_view: int, impression: QualifiedImpression) -> Recorded:
        return self.runtime.record_impression(page_view, impression)

    def record_many(self, page_view: int, impressions: list[QualifiedImpression]) -> RecordedMany:
        return self.runtime.record_many(page_view, impressions)

    def now_mono_ms(self) -> int:
        """The runtime's monotonic clock, for ``QualifiedImpression.first_visible_mono_ms``."""
        return self.runtime.now_mono_ms()

    def flush(self) -> None:
        self.runtime.flush()

    def set_enabled(self, enabled: bool, purge: bool = False) -> None:
        self.runtime.set_enabled(enabled, purge)

    def stats(self) -> Stats:
        """The counters; after :meth:`close`, the final ones."""
        if self._final is not None:
            return self._final
        return self.runtime.stats()

    def __enter__(self) -> Sightline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._final is not None

    def close(self, wait_ms: int | None = None) -> Stats:
        """Flushes, delivers for at most ``wait_ms`` (default ``shutdown_wait_ms``), stops
        the runtime and returns the final counters. Closing twice returns the same ones."""
        with self._closing:
            if self._final is None:
                wait = self.shutdown_wait_ms if wait_ms is None else wait_ms
                self._final = self.runtime.shutdown(wait)
                _open.discard(self)
            return self._final


_open: weakref.WeakSet[Sightline] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for logger in list(_open):
        try:
            logger.close()
        except SightlineError:
            # Shut down already from another thread: nothing left to deliver here.
            pass


def start(
    config: Config,
    data_dir: str,
    endpoint: str | None = None,
    *,
    transport: Transport | None = None,
    shutdown_wait_ms: int = DEFAULT_SHUTDOWN_WAIT_MS,
) -> Sightline:
    """Starts logging: impressions go to the collector at ``endpoint`` (or through the
    app's own ``transport``), and what is not delivered yet is kept in ``data_dir``."""
    if transport is not None:
        runtime = Runtime.start_with_transport(config, data_dir, transport)
    elif endpoint is not None:
        runtime = Runtime.start(config, data_dir, endpoint)
    else:
        raise TypeError("start() needs an endpoint or a transport")
    return Sightline(runtime, shutdown_wait_ms)

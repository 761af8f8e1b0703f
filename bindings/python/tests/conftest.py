"""Shared fixtures: a real collector on loopback (micro mode) and a configuration."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import sightline
from sightline.testing import MicroCollector

REPO = Path(__file__).resolve().parents[3]
APP_KEY = "key-1"
#: Exposures in the runtime tests are real time: a short minimum keeps them fast.
MIN_VISIBLE_MS = 50


def collector_binary() -> str:
    path = os.environ.get("SIGHTLINE_COLLECTOR")
    if not path:
        raise RuntimeError(
            "SIGHTLINE_COLLECTOR must name the collector binary (tests/python.sh sets it)"
        )
    return path


@contextmanager
def running_collector(*extra: str) -> Iterator[MicroCollector]:
    """A real `sightline-collector serve --micro` on a free loopback port."""
    command = [collector_binary(), "serve", "--listen", "127.0.0.1:0", "--micro"]
    process = subprocess.Popen(
        [*command, "--app-key", APP_KEY, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on "), f"collector said {line!r}"
        yield MicroCollector("http://" + line.split()[-1])
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MicroCollector]:
    """A collector checking the tests' contract (short exposures)."""
    contract = tmp_path_factory.mktemp("contract") / "contract.json"
    contract.write_text(json.dumps({"min_visible_ms": MIN_VISIBLE_MS}))
    with running_collector("--contract", str(contract)) as micro:
        yield micro


@pytest.fixture
def default_collector() -> Iterator[MicroCollector]:
    """A collector checking the default contract, as apps are configured by default."""
    with running_collector() as micro:
        yield micro


def quick_contract() -> sightline.Contract:
    contract = sightline.default_contract()
    contract.min_visible_ms = MIN_VISIBLE_MS
    return contract


def exposure(
    log: sightline.Sightline, item_id: str, row: int = 0, column: int = 0
) -> sightline.QualifiedImpression:
    """An impression the app measured itself: fully visible for the contract's minimum, just
    now. Sleeps that long, so the exposure lies within the page view."""
    start = log.now_mono_ms()
    time.sleep(MIN_VISIBLE_MS / 1000)
    return sightline.QualifiedImpression(
        item=sightline.Item(item_id=item_id, row=row, column=column),
        first_visible_mono_ms=start,
        visible_ms=MIN_VISIBLE_MS,
        max_visible_fraction=1.0,
    )


def config(**overrides: object) -> sightline.Config:
    """A valid configuration with a fixed seed (tests are reproducible)."""
    settings: dict[str, object] = {
        "app_id": "com.example.py",
        "app_version": "1.0.0",
        "platform": sightline.Platform.ANDROID,
        "app_key": APP_KEY,
        "seed": 7,
        "contract": quick_contract(),
    }
    settings.update(overrides)
    return sightline.Config(**settings)  # type: ignore[arg-type]


class MemoryStore:
    """The app's store in the sans-IO tests: values by key and the journal's bytes."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.journal = bytearray()

    def apply(self, op: sightline.StoreOp) -> None:
        if isinstance(op, sightline.StoreOp.PUT):
            self.values[op.key] = bytes(op.value)
        elif isinstance(op, sightline.StoreOp.REMOVE):
            self.values.pop(op.key, None)
        elif isinstance(op, sightline.StoreOp.APPEND):
            self.journal += op.bytes
        else:
            self.journal.clear()

    def stored(self) -> sightline.Stored:
        """What a restarted app reads back."""
        return sightline.Stored(values=dict(self.values), journal=bytes(self.journal))

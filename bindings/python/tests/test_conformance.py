"""The conformance suite (tests/conformance) through the Python binding's sans-IO Logger:
every scenario must produce exactly its expected outcome, protobuf digests included, the
same bytes as the Rust runner. The host loop is the one tests/conformance/README.md gives."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

import sightline
from conftest import MemoryStore
from sightline import Item, Logger, Now, QualifiedImpression, SightlineError

SCENARIOS = Path(__file__).resolve().parents[3] / "tests" / "conformance" / "scenarios"
WALL0 = 1_700_000_000_000


def at(mono: int) -> Now:
    return Now(mono_ms=mono, wall_ms=WALL0 + mono)


def item(body: dict[str, Any]) -> Item:
    return Item(
        item_id=body["item_id"],
        row=body["row"],
        column=body["column"],
        artwork_id=body.get("artwork_id"),
    )


def outcome_of(response: dict[str, Any]) -> sightline.UploadOutcome:
    if response.get("network_error"):
        return sightline.UploadOutcome.NETWORK_ERROR()
    return sightline.UploadOutcome.STATUS(
        code=response["status"], retry_after=response.get("retry_after")
    )


class Host:
    """The host of the README's loop: a memory store, scripted responses, the outcome."""

    def __init__(self, scenario: dict[str, Any]) -> None:
        self.config_json = json.dumps(scenario["config"])
        self.responses = list(scenario.get("responses", []))
        self.store = MemoryStore()
        self.failures = 0
        self.page_views: list[int] = []
        self.out: dict[str, Any] = {"refused": [], "uploads": [], "delivered": []}
        self.logger = self.resume(None, 0)

    def resume(self, seed: int | None, t: int) -> Logger:
        config = sightline.config_from_json(self.config_json)
        if seed is not None:
            config.seed = seed
        return Logger.resume(config, self.store.stored(), at(t))

    def drain(self, t: int) -> None:
        while True:
            while (request := self.logger.poll_store_op()) is not None:
                if self.failures > 0:
                    self.failures -= 1
                    failure = sightline.StoreFailure.IO(message="scripted failure")
                    self.logger.handle_store_result(request.id, failure)
                else:
                    self.store.apply(request.op)
                    self.logger.handle_store_result(request.id, None)
            upload = self.logger.poll_upload(at(t))
            if upload is None:
                return
            response = self.responses.pop(0) if self.responses else {"status": 200}
            self.logger.handle_upload_result(upload.id, outcome_of(response), at(t))
            digest = hashlib.sha256(gzip.decompress(bytes(upload.body))).hexdigest()
            index = len(self.out["uploads"])
            self.out["uploads"].append({"at": t, "sha256": digest, "response": response})
            if 200 <= response.get("status", 0) < 300:
                self.deliver(index, bytes(upload.body))

    def deliver(self, index: int, body: bytes) -> None:
        capture = sightline.Capture(None)
        capture.receive(body)
        for i in capture.impressions():
            self.out["delivered"].append(
                {
                    "upload": index,
                    "seq": i.seq,
                    "page": i.page,
                    "page_view": i.page_view,
                    "request_id": i.request_id,
                    "item_id": i.item_id,
                    "artwork_id": i.artwork_id,
                    "row": i.row,
                    "column": i.column,
                    "first_visible_ms": i.first_visible_ms,
                    "visible_ms": i.visible_ms,
                    "max_visible_pct": i.max_visible_pct,
                    "focused_ms": i.focused_ms,
                }
            )

    def timers(self, until: int) -> None:
        while (deadline := self.logger.poll_timeout()) is not None and deadline <= until:
            self.logger.handle_timeout(at(deadline))
            self.drain(deadline)
            after = self.logger.poll_timeout()
            assert after is None or after > deadline, (
                f"the deadline does not advance: handle_timeout at {deadline} leaves {after}"
            )

    def page_view(self, ordinal: int) -> int:
        # Ordinals never started or refused map to 0, an id the logger never issues.
        return self.page_views[ordinal - 1] if 0 < ordinal <= len(self.page_views) else 0

    def step(self, kind: str, body: dict[str, Any], t: int) -> None:
        log, now = self.logger, at(t)
        if kind == "start_page_view":
            self.page_views.append(0)
            page_view = log.start_page_view(
                body["page"], body.get("request_id"), body.get("layout"), now
            )
            self.page_views[-1] = page_view
        elif kind == "end_page_view":
            log.end_page_view(self.page_view(body["page_view"]), now)
        elif kind == "visibility":
            log.visibility(
                self.page_view(body["page_view"]), item(body["item"]), body["fraction"], now
            )
        elif kind == "focus":
            log.focus(self.page_view(body["page_view"]), item(body["item"]), body["focused"], now)
        elif kind == "app_hidden":
            log.app_hidden(now)
        elif kind == "app_visible":
            log.app_visible(now)
        elif kind == "impression":
            impression = QualifiedImpression(
                item=item(body["item"]),
                first_visible_mono_ms=body["first_visible_at"],
                visible_ms=body["visible_ms"],
                max_visible_fraction=body["max_visible_fraction"],
                focused_ms=body["focused_ms"],
            )
            log.record_impression(self.page_view(body["page_view"]), impression, now)
        elif kind == "flush":
            log.flush(now)
        elif kind == "set_enabled":
            log.set_enabled(body["enabled"], body["purge"], now)
        elif kind == "restart":
            self.logger = self.resume(body["seed"], t)
        elif kind == "fail_store":
            self.failures += body["count"]
        else:
            raise ValueError(f"unknown step kind {kind}")

    def run(self, scenario: dict[str, Any]) -> dict[str, Any]:
        self.drain(0)
        for index, step in enumerate(scenario["steps"]):
            t = step["at"]
            (kind,) = [k for k in step if k != "at"]
            self.timers(t)
            try:
                self.step(kind, step[kind], t)
            except (SightlineError.Contract, SightlineError.Misuse) as refusal:
                rule = (
                    refusal.rule if isinstance(refusal, SightlineError.Contract) else refusal.what
                )
                self.out["refused"].append({"step": index, "rule": rule})
            self.drain(t)
        self.timers(scenario["until"])
        s = self.logger.stats()
        self.out["stats"] = {
            "recorded": s.recorded,
            "sampled_out": s.sampled_out,
            "deduped": s.deduped,
            "issued": s.issued,
            "delivered": s.delivered,
            "invalid": s.invalid,
            "uploads": s.uploads,
            "retries": s.retries,
            "bytes_delivered": s.bytes_delivered,
            "store_errors": s.store_errors,
            "corrupt_records": s.corrupt_records,
            "dropped": dict(s.dropped),
            "invalid_by_rule": dict(s.invalid_by_rule),
        }
        return self.out


def scenario_files() -> list[Path]:
    return sorted(SCENARIOS.glob("*.json"))


def test_the_suite_has_at_least_twenty_scenarios() -> None:
    assert len(scenario_files()) >= 20


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: p.stem)
def test_scenario_produces_the_expected_outcome_and_bytes(path: Path) -> None:
    scenario = json.loads(path.read_text())
    actual = Host(scenario).run(scenario)
    expected = scenario["expect"]
    for key in ("refused", "uploads", "delivered", "stats"):
        assert actual[key] == expected[key], f"{path.stem}: expect.{key} differs"

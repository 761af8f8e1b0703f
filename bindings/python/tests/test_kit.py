"""The producer test kit from Python: what a producer team's unit tests look like."""

from __future__ import annotations

import pytest

import sightline
from conftest import config, exposure
from sightline.testing import CaptureKit, captured


def show(log: sightline.Sightline, pv: int, item_id: str, row: int, column: int) -> None:
    log.record_impression(pv, exposure(log, item_id, row, column))


def test_a_correct_app_passes_every_assertion() -> None:
    with captured(config()) as (log, kit):
        pv = log.start_page_view("home", "req-1", [["title:1", "title:2"], ["title:3"]])
        show(log, pv, "title:1", 0, 0)
        show(log, pv, "title:3", 1, 0)
    imp = kit.assert_impression("title:3", row=1, column=0)
    assert (imp.page, imp.request_id, imp.max_visible_pct) == ("home", "req-1", 100)
    kit.assert_no_impression("title:2")
    kit.assert_no_violations()
    kit.assert_accounted()
    assert [a.delivered for a in kit.accounting()] == [2]


def test_an_item_logged_at_the_wrong_place_fails_with_the_rule_item_and_position() -> None:
    with captured(config()) as (log, kit):
        pv = log.start_page_view("home", None, [["title:1", "title:2"]])
        show(log, pv, "title:1", 0, 0)
        # The app's bug: it reports title:2 at the first column.
        with pytest.raises(sightline.SightlineError.Contract) as refused:
            show(log, pv, "title:2", 0, 0)
        assert refused.value.rule == "wrong_position"
    with pytest.raises(AssertionError, match="refused 1 input"):
        kit.assert_no_violations()
    with pytest.raises(AssertionError) as missing:
        kit.assert_impression("title:1", row=0, column=1)
    message = str(missing.value)
    assert "item title:1 at row 0, column 1" in message
    assert "found 1: [item title:1 at row 0, column 0 on page home" in message


def test_an_expected_violation_that_did_not_happen_names_the_rule_and_what_was_found() -> None:
    with captured(config()) as (log, kit):
        pv = log.start_page_view("home")
        show(log, pv, "title:1", 0, 0)
    with pytest.raises(
        AssertionError,
        match=r"expected a violation of too_short \(.*\) by item title:1; found: \[\]",
    ):
        kit.assert_violation("too_short", "title:1")
    with pytest.raises(sightline.KitError.UnknownRule):
        kit.assert_violation("no_such_rule")


def test_a_body_that_is_not_an_upload_is_refused_by_the_capture() -> None:
    kit = CaptureKit(sightline.Capture(None))
    with pytest.raises(sightline.KitError.Undecodable):
        kit.receive(b"not gzip")
    assert kit.uploads() == 0
    with pytest.raises(AssertionError, match="received none"):
        kit.assert_accounted()

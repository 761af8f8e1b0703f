"""The sans-IO Logger from Python: the host loop, typed errors, panics, threads."""

from __future__ import annotations

import threading

import pytest

import sightline
from conftest import MemoryStore, config
from sightline import Item, Logger, Now, QualifiedImpression, SightlineError, Stored


def at(mono: int) -> Now:
    return Now(mono_ms=mono, wall_ms=1_700_000_000_000 + mono)


def qualified(item_id: str, column: int, visible_ms: int = 1_500) -> QualifiedImpression:
    return QualifiedImpression(
        item=Item(item_id=item_id, row=0, column=column),
        first_visible_mono_ms=0,
        visible_ms=visible_ms,
        max_visible_fraction=1.0,
    )


class MemoryHost:
    """The app's side of the sans-IO contract: a dict store and a list of sent bodies."""

    def __init__(self, logger: Logger) -> None:
        self.logger = logger
        self.store = MemoryStore()
        self.sent: list[bytes] = []

    def drain(self, t: int, status: int = 200) -> None:
        while True:
            while (request := self.logger.poll_store_op()) is not None:
                self.store.apply(request.op)
                self.logger.handle_store_result(request.id)
            upload = self.logger.poll_upload(at(t))
            if upload is None:
                return
            headers = {h.name: h.value for h in upload.headers}
            assert headers["content-type"] == "application/x-sightline-batch"
            assert upload.path == "/v1/batches"
            self.sent.append(bytes(upload.body))
            outcome = sightline.UploadOutcome.STATUS(code=status, retry_after=None)
            self.logger.handle_upload_result(upload.id, outcome, at(t))


def test_a_visible_item_becomes_an_impression_the_host_uploads_and_gets_acknowledged() -> None:
    host = MemoryHost(Logger.resume(config(), Stored(), at(0)))
    log = host.logger
    pv = log.start_page_view("home", "req-1", [["title:1", "title:2"]], at(10))
    log.visibility(pv, Item(item_id="title:2", row=0, column=1), 1.0, at(100))
    log.visibility(pv, Item(item_id="title:2", row=0, column=1), 0.0, at(1_700))
    log.app_hidden(at(1_800))
    host.drain(1_800)
    assert len(host.sent) == 1
    kit = sightline.Capture(None)
    kit.receive(host.sent[0])
    imp = kit.assert_impression("title:2", 0, 1)
    assert (imp.page, imp.request_id, imp.visible_ms) == ("home", "req-1", 1_600)
    stats = log.stats()
    assert (stats.recorded, stats.delivered, stats.pending) == (1, 1, 0)
    assert log.poll_timeout() is None


def test_a_restart_over_the_stored_state_keeps_the_session_and_sends_what_was_queued() -> None:
    host = MemoryHost(Logger.resume(config(), Stored(), at(0)))
    session = host.logger.session_id()
    pv = host.logger.start_page_view("home", None, None, at(0))
    host.logger.record_impression(pv, qualified("title:1", 0), at(2_000))
    host.logger.flush(at(2_000))
    host.drain(2_000, status=503)
    again = MemoryHost(Logger.resume(config(seed=8), host.store.stored(), at(0)))
    assert again.logger.session_id() == session
    deadline = again.logger.poll_timeout()
    assert deadline is not None
    again.logger.handle_timeout(at(deadline))
    again.drain(deadline)
    assert again.logger.stats().delivered == 1


def test_a_contract_refusal_is_a_typed_exception_naming_the_rule_and_is_counted() -> None:
    log = Logger.resume(config(), Stored(), at(0))
    pv = log.start_page_view("home", None, [["title:1"]], at(0))
    with pytest.raises(SightlineError.Contract) as refused:
        log.record_impression(pv, qualified("title:1", 0, visible_ms=10), at(1_000))
    assert refused.value.rule == "too_short"
    assert "too_short" in str(refused.value)
    with pytest.raises(SightlineError.Contract) as off_page:
        log.visibility(pv, Item(item_id="title:9", row=0, column=0), 1.0, at(1_000))
    assert off_page.value.rule == "not_on_page"
    assert log.stats().invalid_by_rule == {"too_short": 1, "not_on_page": 1}


def test_misuse_and_configuration_errors_are_their_own_exception_types() -> None:
    log = Logger.resume(config(), Stored(), at(0))
    with pytest.raises(SightlineError.Misuse) as unknown:
        log.end_page_view(42, at(0))
    assert unknown.value.what == "unknown_page_view"
    with pytest.raises(SightlineError.Misuse) as not_in_flight:
        log.handle_upload_result(99, sightline.UploadOutcome.NETWORK_ERROR(), at(0))
    assert not_in_flight.value.what == "unknown_upload"
    with pytest.raises(SightlineError.Config) as bad:
        Logger.resume(config(app_id="not an id!"), Stored(), at(0))
    assert "app_id" in str(bad.value)
    with pytest.raises(SightlineError.Config):
        sightline.config_from_json('{"app_id": "x", "no_such_setting": 1}')


def test_a_rust_panic_surfaces_as_an_exception_and_the_process_lives_on() -> None:
    with pytest.raises(sightline.InternalError) as caught:
        sightline.trigger_internal_error()
    assert "trigger_internal_error" in str(caught.value)
    log = Logger.resume(config(), Stored(), at(0))
    assert log.start_page_view("home", None, None, at(0)) > 0


def test_eight_threads_recording_at_once_are_accounted_exactly() -> None:
    log = Logger.resume(config(max_batch_impressions=50), Stored(), at(0))
    pv = log.start_page_view("home", None, None, at(0))
    per_thread = 250
    errors: list[BaseException] = []

    def record(thread: int) -> None:
        try:
            for i in range(per_thread):
                imp = QualifiedImpression(
                    item=Item(item_id=f"title:{thread}-{i}", row=thread, column=i % 100),
                    first_visible_mono_ms=0,
                    visible_ms=1_500,
                    max_visible_fraction=1.0,
                )
                log.record_impression(pv, imp, at(2_000))
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=record, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    host = MemoryHost(log)
    log.flush(at(2_000))
    host.drain(2_000)
    stats = log.stats()
    assert (stats.recorded, stats.issued, stats.delivered) == (2_000, 2_000, 2_000)
    kit = sightline.Capture(None)
    for body in host.sent:
        kit.receive(body)
    assert len(kit.impressions()) == 2_000
    kit.assert_accounted()


def test_record_many_records_a_list_in_one_call_and_reports_refusals_by_index() -> None:
    log = Logger.resume(config(), Stored(), at(0))
    pv = log.start_page_view("home", None, None, at(0))
    done = log.record_many(
        pv,
        [qualified("title:1", 0), qualified("title:2", 1, visible_ms=10), qualified("title:1", 0)],
        at(2_000),
    )
    assert (done.logged, done.deduped) == (1, 1)
    assert [(r.index, r.rule) for r in done.refused] == [(1, "too_short")]

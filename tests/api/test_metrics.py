"""/metrics parsed by the Prometheus project's OpenMetrics parser, which refuses any
exposition that breaks the format, then read for the series the collector promises."""

from __future__ import annotations

from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from conftest import FIXTURE, Api


def scrape(api: Api) -> dict[str, list[Sample]]:
    answer = api.request("GET", "/metrics")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    families = text_string_to_metric_families(answer.body.decode())
    return {family.name: family.samples for family in families}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


def test_counters_follow_the_uploads(fresh: Api) -> None:
    before = scrape(fresh)
    assert value(before["sightline_batches"], "sightline_batches_total") == 0
    for _ in range(2):
        assert fresh.upload(FIXTURE.read_bytes()).status == 200
    assert fresh.upload(b"x", key="wrong").status == 401
    after = scrape(fresh)
    assert value(after["sightline_batches"], "sightline_batches_total") == 2
    assert value(after["sightline_refused_app_key"], "sightline_refused_app_key_total") == 1
    assert value(after["sightline_bytes_in"], "sightline_bytes_in_total") == 2 * len(
        FIXTURE.read_bytes()
    )


def test_request_durations_are_histograms_by_route_and_status(fresh: Api) -> None:
    assert fresh.upload(FIXTURE.read_bytes()).status == 200
    families = scrape(fresh)
    durations = families["sightline_http_request_duration_seconds"]
    route = {"route": "/v1/batches", "method": "POST", "code": "200"}
    count = value(durations, "sightline_http_request_duration_seconds_count", **route)
    inf = value(durations, "sightline_http_request_duration_seconds_bucket", le="+Inf", **route)
    assert count >= 1 and inf == count
    writes = families["sightline_sink_write_duration_seconds"]
    assert value(writes, "sightline_sink_write_duration_seconds_count") >= 1


def test_the_scrape_itself_is_the_one_request_in_flight(api: Api) -> None:
    families = scrape(api)
    in_flight = families["sightline_http_requests_in_flight"]
    assert value(in_flight, "sightline_http_requests_in_flight") == 1


def test_session_state_sizes_cover_every_tracked_session(fresh: Api) -> None:
    assert fresh.upload(FIXTURE.read_bytes()).status == 200
    families = scrape(fresh)
    tracked = value(families["sightline_sessions_tracked"], "sightline_sessions_tracked")
    sizes = families["sightline_session_state_entries"]
    assert tracked == 1
    assert value(sizes, "sightline_session_state_entries_count") == tracked


def test_buffered_bytes_are_within_the_budget(api: Api) -> None:
    families = scrape(api)
    buffered = value(families["sightline_buffered_bytes"], "sightline_buffered_bytes")
    budget = value(families["sightline_buffer_budget_bytes"], "sightline_buffer_budget_bytes")
    assert 0 <= buffered <= budget and budget == 64 * 1024 * 1024

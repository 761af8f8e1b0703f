"""Answers with real data match the schemas of the document the collector serves (the
schemathesis run sends mostly refused uploads, so these specs store real rows first)."""

from __future__ import annotations

import jsonschema_rs

from conftest import FIXTURE, Api


def validator(document: dict, name: str) -> jsonschema_rs.Draft202012Validator:
    """A validator of the document's component `name`, its references resolved in place (the
    validator schemathesis uses, for the JSON Schema dialect of OpenAPI 3.1)."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(schema)


def test_the_document_is_openapi_3_1_and_lists_only_mounted_routes(document: dict) -> None:
    assert document["openapi"] == "3.1.0"
    # Micro mode without fault injection: /admin/faults is not mounted, so not listed.
    assert "/admin/faults" not in document["paths"]
    assert {"/v1/batches", "/micro/good", "/openapi.json"} <= set(document["paths"])


def test_a_stored_batch_answers_and_rows_match_their_schemas(fresh: Api, document: dict) -> None:
    first = fresh.upload(FIXTURE.read_bytes())
    assert first.status == 200, first.body
    result = first.json()
    validator(document, "UploadResult").validate(result)
    assert isinstance(result, dict)
    assert result["accepted"] + result["rejected"] > 0
    good = fresh.request("GET", "/micro/good").json()
    bad = fresh.request("GET", "/micro/bad").json()
    assert isinstance(good, list) and isinstance(bad, list)
    assert len(good) == result["accepted"] and len(bad) == result["rejected"]
    for row in good:
        validator(document, "Row").validate(row)
    for row in bad:
        validator(document, "BadRow").validate(row)


def test_a_retry_is_answered_as_duplicates(fresh: Api, document: dict) -> None:
    body = FIXTURE.read_bytes()
    stored = fresh.upload(body).json()
    again = fresh.upload(body).json()
    assert isinstance(stored, dict) and isinstance(again, dict)
    assert again["accepted"] == 0
    assert again["duplicates"] == stored["accepted"] + stored["rejected"]


def test_sessions_match_the_reconciliation_schema(fresh: Api, document: dict) -> None:
    assert fresh.upload(FIXTURE.read_bytes()).status == 200
    for path in ["/sessions", "/micro/sessions"]:
        sessions = fresh.request("GET", path).json()
        assert isinstance(sessions, dict) and len(sessions) == 1
        for reconciliation in sessions.values():
            validator(document, "Reconciliation").validate(reconciliation)


def test_a_row_schema_refuses_a_field_it_does_not_document(fresh: Api, document: dict) -> None:
    assert fresh.upload(FIXTURE.read_bytes()).status == 200
    rows = fresh.request("GET", "/micro/good").json() or fresh.request("GET", "/micro/bad").json()
    assert isinstance(rows, list) and rows
    row = dict(rows[0], undocumented=1)
    name = "BadRow" if "rules" in row else "Row"
    assert not validator(document, name).is_valid(row)


def test_refusals_carry_the_documented_error(api: Api, document: dict) -> None:
    error = validator(document, "Error")
    for answer, status in [
        (api.upload(b"not gzip"), 400),
        (api.upload(b"x", key="wrong"), 401),
        (api.request("POST", "/v1/batches", b"x", {"x-sightline-app-key": api.key}), 415),
    ]:
        assert answer.status == status
        error.validate(answer.json())

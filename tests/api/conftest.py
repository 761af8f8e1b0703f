"""The collector under test: started by tests/api.sh, found through the environment."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v1" / "batch.pb.gz"
BATCH_CONTENT_TYPE = "application/x-sightline-batch"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class Api:
    url: str
    key: str

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> Answer:
        request = urllib.request.Request(
            self.url + path, data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return Answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, dict(error.headers), error.read())

    def upload(self, body: bytes, key: str | None = None) -> Answer:
        headers = {"content-type": BATCH_CONTENT_TYPE, "x-sightline-app-key": key or self.key}
        return self.request("POST", "/v1/batches", body, headers)


@pytest.fixture(scope="session")
def api() -> Api:
    return Api(os.environ["SIGHTLINE_API_URL"], os.environ["SIGHTLINE_API_KEY"])


@pytest.fixture(scope="session")
def document(api: Api) -> dict:
    answer = api.request("GET", "/openapi.json")
    assert answer.status == 200
    document = answer.json()
    assert isinstance(document, dict)
    return document


@pytest.fixture
def fresh(api: Api) -> Api:
    """The collector with no rows, sessions or counters from earlier specs."""
    assert api.request("POST", "/micro/reset").status == 204
    return api

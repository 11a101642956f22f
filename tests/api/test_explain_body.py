"""``POST /api/v1/explain`` refuses a malformed body with a 400 that names the field, through the real app:
the body's model (``spyglass.api.models.ExplainRequest``) declares the bounds, ``api/refusals.py`` words them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer

GOOD = {
    "service": "api",
    "operation": "GET /x",
    "start_ns": 10,
    "end_ns": 20,
    "baseline_start_ns": 0,
    "baseline_end_ns": 10,
    "signal": "errors",
}


def _post(server: RunningServer, body: Any, raw: bytes | None = None) -> httpx.Response:
    if raw is not None:
        return httpx.post(
            server.api + "/api/v1/explain", content=raw, headers={"content-type": "application/json"}
        )
    return httpx.post(server.api + "/api/v1/explain", json=body)


def test_a_good_body_is_answered(spyglass: RunningServer) -> None:
    response = _post(spyglass, GOOD)
    assert response.status_code == 200 and response.json()["findings"] == []


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ([], "JSON object"),
        ({**GOOD, "service": ""}, "service"),
        ({**GOOD, "end_ns": 5}, "start_ns must be before end_ns"),
        ({**GOOD, "baseline_end_ns": 0}, "baseline_start_ns must be before baseline_end_ns"),
        ({**GOOD, "signal": "cpu"}, "signal"),
        ({k: v for k, v in GOOD.items() if k != "baseline_end_ns"}, "baseline_end_ns is required"),
        ({**GOOD, "start_ns": "10"}, "start_ns"),
        ({**GOOD, "start_ns": True}, "start_ns"),
        ({**GOOD, "start_ns": 1.5}, "start_ns"),
        ({**GOOD, "start_ns": -1}, "start_ns"),
        ({**GOOD, "end_ns": 10**30}, "64-bit"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(spyglass: RunningServer, body: Any, named: str) -> None:
    response = _post(spyglass, body)
    assert response.status_code == 400, response.text
    assert named in response.json()["error"]


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"null", b'"text"'])
def test_a_body_that_is_not_a_json_object_is_a_400(spyglass: RunningServer, raw: bytes) -> None:
    response = _post(spyglass, None, raw)
    assert response.status_code == 400, response.text
    assert response.json()["error"]

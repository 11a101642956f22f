"""``GET /api/v1/critical-path`` over real traces sent with the OpenTelemetry SDK, checked by hand."""

from __future__ import annotations

import time

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from tests.conftest import RunningServer
from tests.support.otel import http_exporter, provider

MS = 1_000_000


def _send(
    spyglass: RunningServer, t0: int, root_ms: int, child: tuple[int, int], root_name: str = "GET /checkout"
) -> None:
    """frontend ``root_name`` for ``root_ms``, with a payment call over ``child`` (ms) and a parallel, shorter
    audit call that is never critical."""
    frontend = provider("frontend", http_exporter(spyglass.otlp_http)).get_tracer("t")
    payment = provider("payment", http_exporter(spyglass.otlp_http)).get_tracer("t")
    root = frontend.start_span(root_name, kind=SpanKind.SERVER, start_time=t0)
    parent = trace.set_span_in_context(root)
    charge = payment.start_span("charge", context=parent, kind=SpanKind.SERVER, start_time=t0 + child[0] * MS)
    audit = payment.start_span("audit", context=parent, kind=SpanKind.INTERNAL, start_time=t0 + child[0] * MS)
    audit.end(end_time=t0 + (child[0] + 1) * MS)
    charge.end(end_time=t0 + child[1] * MS)
    root.end(end_time=t0 + root_ms * MS)


def test_critical_path_shares_match_hand_computation(spyglass: RunningServer) -> None:
    t0 = time.time_ns() - 60 * 10**9
    _send(spyglass, t0, 100, (10, 95))  # frontend 15 ms, charge 85 ms
    _send(spyglass, t0 + 10**9, 200, (20, 190))  # frontend 30 ms, charge 170 ms
    _send(spyglass, t0 + 2 * 10**9, 100, (0, 100), root_name="GET /other")  # another root: not counted
    spyglass.wait_for(lambda s: s["spans_received"] == 9)
    spyglass.flush()
    window = {"start_ns": t0 - 10**9, "end_ns": t0 + 10 * 10**9}
    params = {"service": "frontend", "operation": "GET /checkout", **window}
    body = spyglass.get("/api/v1/critical-path", params=params).json()
    assert body["traces"] == 2
    charge, root = body["contributions"]  # audit is never on the path: left out
    assert (charge["service"], charge["operation"]) == ("payment", "charge")
    assert (root["service"], root["operation"]) == ("frontend", "GET /checkout")
    assert charge["share"] == pytest.approx(255 / 300) and root["share"] == pytest.approx(45 / 300)
    assert charge["max_speedup"] == pytest.approx(1 / (1 - 0.85)) == pytest.approx(6.667, abs=1e-3)
    assert root["max_speedup"] == pytest.approx(1 / 0.85) == pytest.approx(1.176, abs=1e-3)
    assert (root["p50_ms"], root["p99_ms"]) == (pytest.approx(15), pytest.approx(30))
    assert (charge["p50_ms"], charge["p99_ms"]) == (pytest.approx(85), pytest.approx(170))

    one = spyglass.get("/api/v1/critical-path", params={**params, "limit": 1}).json()
    assert one["traces"] == 1
    other = spyglass.get("/api/v1/critical-path", params={**params, "operation": "GET /other"}).json()
    assert other["traces"] == 1
    [whole] = other["contributions"]  # the child covers its root: all of the path, no finite bound
    assert (whole["operation"], whole["share"], whole["max_speedup"]) == ("charge", 1.0, None)
    none = spyglass.get("/api/v1/critical-path", params={**params, "operation": "GET /nothing"}).json()
    assert none == {"traces": 0, "contributions": []}
    assert "/api/v1/critical-path" in spyglass.get("/openapi.json").json()["paths"]


def test_critical_path_many_traces_are_read_with_one_scan(spyglass: RunningServer) -> None:
    t0 = time.time_ns() - 60 * 10**9
    for i in range(25):
        _send(spyglass, t0 + i * 10**8, 100, (10, 95) if i % 2 else (30, 75))
    spyglass.wait_for(lambda s: s["spans_received"] == 75)
    spyglass.flush()
    params = {"service": "frontend", "operation": "GET /checkout", "start_ns": t0, "end_ns": t0 + 10**10}
    body = spyglass.get("/api/v1/critical-path", params=params).json()
    assert body["traces"] == 25
    shares = {c["operation"]: c["share"] for c in body["contributions"]}
    # 12 traces with charge 85 ms, 13 with 45 ms, of 2500 ms in all.
    assert shares["charge"] == pytest.approx((12 * 85 + 13 * 45) / 2500)
    assert shares["GET /checkout"] == pytest.approx((12 * 15 + 13 * 55) / 2500)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"service": "frontend"},
        {"operation": "GET /checkout"},
        {"service": "frontend", "operation": "GET /checkout", "start_ns": "soon"},
        {"service": "frontend", "operation": "GET /checkout", "start_ns": 2, "end_ns": 1},
        {"service": "frontend", "operation": "GET /checkout", "limit": 0},
        {"service": "frontend", "operation": "GET /checkout", "limit": 20_001},
    ],
)
def test_critical_path_bad_requests(spyglass: RunningServer, params: dict[str, object]) -> None:
    response = spyglass.get("/api/v1/critical-path", params=params)
    assert response.status_code == 400
    assert "error" in response.json()

"""The endpoints the UI adds (spyglass/api/ui_support.py), against a real server, no browser."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from tests.conftest import RunningServer
from tests.web.conftest import otlp_span, otlp_trace, send_otlp_json


def test_overview_heatmap_deployments_and_trace_critical_path(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server()
    now = time.time_ns()
    trace_id, root, child, late = secrets.token_hex(16), *(secrets.token_hex(8) for _ in range(3))
    # A server span calling two children one after another: both are on the critical path.
    spans = [
        otlp_span(trace_id, root, None, "GET /", now - 2_000_000_000, 30_000_000, kind=2),
        otlp_span(trace_id, child, root, "db", now - 1_995_000_000, 10_000_000, kind=3),
        otlp_span(trace_id, late, root, "render", now - 1_980_000_000, 8_000_000),
    ]
    send_otlp_json(
        server, otlp_trace("web", spans, {"service.namespace": "web-team", "service.version": "1"})
    )
    # Version 2 of the same service starts answering 10 s later.
    later = secrets.token_hex(16)
    send_otlp_json(
        server,
        otlp_trace(
            "web",
            [otlp_span(later, secrets.token_hex(8), None, "GET /", now + 8_000_000_000, 20_000_000, kind=2)],
            {"service.namespace": "web-team", "service.version": "2"},
        ),
    )
    server.wait_for(lambda s: s["spans_received"] == 4)
    server.flush()
    window = {"start_ns": now - 60_000_000_000, "end_ns": now + 60_000_000_000}

    overview = server.get("/api/v1/ui/services", params={**window, "step_s": 10}).json()
    (web,) = overview["services"]
    assert web["service"] == "web" and web["owner"] == "web-team"
    assert web["count"] == 2  # entry spans only: the two GET / server spans
    assert sum(point["count"] for point in web["series"]) == 2

    heatmap = server.get("/api/v1/ui/latency-heatmap", params={**window, "service": "web"}).json()
    assert heatmap["total"] == 4 and sum(map(sum, heatmap["counts"])) == 4
    assert len(heatmap["edges_ms"]) == len(heatmap["counts"][0]) + 1

    versions = server.get("/api/v1/ui/deployments", params={**window, "service": "web"}).json()["versions"]
    assert [(v["version"], v["deployed"]) for v in versions] == [("1", False), ("2", True)]

    critical = server.get(f"/api/v1/traces/{trace_id}/critical-path").json()
    on_path = {s["span_id"]: s["critical_ns"] for s in critical["spans"]}
    assert set(on_path) == {root, child, late}
    assert sum(on_path.values()) == 30_000_000
    assert server.get(f"/api/v1/traces/{secrets.token_hex(16)}/critical-path").status_code == 404
    assert server.get("/api/v1/traces/nothex/critical-path").status_code == 400

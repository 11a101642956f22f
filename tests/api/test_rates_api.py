"""Rates divide by the time data covers: a server fed a steady, known rate for a few seconds answers that rate at
once, not the rate spread over an empty window."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.conftest import RunningServer
from tests.support.steady import feed_steady

RATE_PER_S = 20.0
FEED_S = 4.0
WINDOW_NS = 15 * 60 * 10**9  # the services page's default range


def _fed(start_server: Callable[..., RunningServer]) -> tuple[RunningServer, int]:
    server = start_server()
    feed = feed_steady(server.otlp_http, RATE_PER_S, FEED_S)
    server.wait_for(lambda status: status["spans_received"] >= feed.spans)
    return server, feed.spans


def test_services_overview_rate_is_the_true_rate_right_away(
    start_server: Callable[..., RunningServer],
) -> None:
    server, sent = _fed(start_server)
    end_ns = time.time_ns()
    params = {"start_ns": end_ns - WINDOW_NS, "end_ns": end_ns, "step_s": 10}
    overview = server.get("/api/v1/ui/services", params=params).json()
    (shop,) = [s for s in overview["services"] if s["service"] == "shop"]
    assert shop["count"] == sent
    assert abs(shop["rate_per_s"] - RATE_PER_S) <= 0.15 * RATE_PER_S, overview
    # Covered: from the first span, a few seconds, not the 15-minute window.
    assert FEED_S * 0.8 <= overview["covered_s"] <= FEED_S * 1.5, overview
    # Each step's rate is over the part of it data covers. A step data covers for under a second is not judged:
    # the first span may land a few ms before a step ends, and one span is no rate.
    step_ns = overview["step_s"] * 10**9
    covered = (overview["covered_start_ns"], min(overview["covered_end_ns"], end_ns))
    judged = [
        p
        for p in shop["series"]
        if p["count"] and min(p["start_ns"] + step_ns, covered[1]) - max(p["start_ns"], covered[0]) >= 10**9
    ]
    assert judged, shop["series"]
    assert all(abs(p["rate_per_s"] - RATE_PER_S) <= 0.5 * RATE_PER_S for p in judged), judged


def test_metrics_rates_per_operation(start_server: Callable[..., RunningServer]) -> None:
    server, sent = _fed(start_server)
    end_ns = time.time_ns()
    params: dict[str, Any] = {"start_ns": end_ns - WINDOW_NS, "end_ns": end_ns, "service": "shop"}
    answer = server.get("/api/v1/metrics", params={**params, "group_by": "operation"}).json()
    (group,) = answer["groups"]
    assert group["count"] == sent
    assert abs(group["rate_per_s"] - RATE_PER_S) <= 0.15 * RATE_PER_S, answer


def test_a_window_before_any_data_has_no_rate(start_server: Callable[..., RunningServer]) -> None:
    server, _ = _fed(start_server)
    end_ns = time.time_ns() - 3600 * 10**9
    answer = server.get("/api/v1/metrics", params={"start_ns": end_ns - WINDOW_NS, "end_ns": end_ns}).json()
    assert answer["groups"][0]["rate_per_s"] == 0
    assert answer["covered_s"] == WINDOW_NS / 1e9

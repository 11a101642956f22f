"""A group-by on an attribute no rollup tracks, asked again and again while the satellite decides and writes
traces: every span counts once at every moment (a trace between its decision and its write is still counted)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from spyglass.cluster.otlp_encoder import encode_otlp_proto
from spyglass.model.builder import SpanBatchBuilder, encode_attributes
from tests.conftest import RunningServer

TRACES = 400


def test_every_span_counts_once_while_traces_are_decided(start_server: Callable[..., RunningServer]) -> None:
    server = start_server(sample_rate=1.0, decision_wait_s=0.3)
    now = time.time_ns()
    builder = SpanBatchBuilder()
    for i in range(TRACES):
        builder.add(
            trace_id=(i + 1).to_bytes(16, "big"),
            span_id=(i + 1).to_bytes(8, "big"),
            parent_span_id=None,
            service="shop",
            name="GET /",
            kind=2,
            start_ns=now + i * 1_000_000,
            duration_ns=2_000_000,
            status_code=0,
            attributes=encode_attributes({"plan": "pro" if i % 2 else "free"}.items()),
        )
    response = httpx.post(
        server.otlp_http + "/v1/traces",
        content=encode_otlp_proto(builder.finish()),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=10,
    )
    assert response.status_code == 200
    server.wait_for(lambda s: s["spans_received"] == TRACES)
    params = {"service": "shop", "group_by": "plan", "start_ns": now - 10**9, "end_ns": now + 60 * 10**9}
    seen = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the decisions (0.3 s of quiet) and the writes happen meanwhile
        groups = server.get("/api/v1/metrics", params=params).json()["groups"]
        counts = {g["key"]: g["count"] for g in groups}
        assert counts == {"free": TRACES // 2, "pro": TRACES // 2}, counts
        seen.add(server.status()["spans_stored"])
        if server.status()["spans_stored"] == TRACES and len(seen) > 1:
            break
    assert server.status()["spans_stored"] == TRACES

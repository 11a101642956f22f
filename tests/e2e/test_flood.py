"""A flood far above capacity, from several processes over OTLP/HTTP and OTLP/gRPC, for a minute.

Overload must be refused explicitly (429 / RESOURCE_EXHAUSTED with retry advice), never queued past the OTel
SDK's 10 s export timeout; queries must keep answering in well under a second; and every acknowledged span must
be counted and stored. ``SPYGLASS_FLOOD_S`` sets the flood's length (default 60 s).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.conftest import RunningServer
from tests.support.flood import flood

FLOOD_S = float(os.environ.get("SPYGLASS_FLOOD_S", "60"))


@pytest.mark.alone
def test_a_flood_is_refused_at_the_door_and_every_acknowledged_span_is_stored(
    start_server: Callable[..., RunningServer],
) -> None:
    spyglass: RunningServer = start_server(decision_wait_s=1.0)
    report = flood(spyglass.api, spyglass.ports.otlp_http, spyglass.otlp_grpc, FLOOD_S)
    figures = report.summary()
    for name, value in figures.items():
        print(f"{name:48s} {value:>14,.1f}")

    assert not report.failures(), report.failures()[:10]
    assert not report.query_failures, report.query_failures[:10]
    assert figures["http refused exports"] > 0 and figures["grpc refused exports"] > 0
    advice = set().union(*(s.retry_advice for s in report.senders))
    assert advice == {"1", "RetryInfo 1s"}, advice
    assert figures["export answer max ms"] < 10_000  # inside the OTel SDK's export timeout
    assert figures["query p99 ms"] < 1_000

    spyglass.flush()
    status = spyglass.status()
    acked = report.acked_spans()
    print(
        f"acknowledged spans {acked:,}; status {status['spans_received']:,} received, "
        f"{status['spans_stored']:,} stored"
    )
    assert status["spans_received"] == acked
    assert status["spans_stored"] == acked
    assert status["spans_unwritable"] == 0 and status["spans_write_failed"] == 0
    # Some acknowledged traces, looked up one by one, are whole.
    trace_ids = report.acked_trace_ids()
    for trace_id in trace_ids[:: max(1, len(trace_ids) // 50)]:
        assert len(spyglass.get(f"/api/v1/traces/{trace_id.hex()}").json()["spans"]) == 10

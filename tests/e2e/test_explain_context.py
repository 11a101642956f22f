"""Each explain finding brings the logs that matter: log records and span events of its example traces."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.conftest import RunningServer
from tests.e2e.test_logs import python_logger
from tests.support.otel import http_exporter, provider

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
MS = 1_000_000
T0 = 1_795_000_000_000_000_000


def test_findings_carry_logs_and_events_of_their_examples(start_server: Callable[..., RunningServer]) -> None:
    spyglass: RunningServer = start_server(decision_wait_s=0.1)
    tracers = {
        version: provider(
            "cart", http_exporter(spyglass.otlp_http), **{"service.version": version}
        ).get_tracer("t")
        for version in ("1.0", "2.0")
    }
    with python_logger("cart", HttpLogExporter(endpoint=spyglass.otlp_http + "/v1/logs")) as logger:
        for phase, start in (("baseline", T0), ("regression", T0 + 100_000 * MS)):
            for i in range(60):
                version = "2.0" if phase == "regression" and i % 2 == 0 else "1.0"
                slow = version == "2.0"
                begin = start + i * 500 * MS
                duration = (90 if slow else 10) * MS
                root = tracers[version].start_span("GET /cart", kind=SpanKind.SERVER, start_time=begin)
                if slow:
                    root.add_event("cache miss", {"key": f"cart:{i}"}, timestamp=begin + MS)
                    root.set_status(Status(StatusCode.ERROR, "slow path"))
                    with trace.use_span(root):
                        logger.warning("cart %d rebuilt from the database", i)
                root.end(end_time=begin + duration)
    spyglass.wait_for(lambda s: s["spans_received"] == 120)
    spyglass.flush()
    spyglass.server.log_writer.flush()
    response = spyglass.get("/api/v1/traces", params={"start_ns": T0 - 1, "limit": 1000})
    assert len(response.json()["traces"]) == 120
    window = {"start_ns": T0 + 100_000 * MS, "end_ns": T0 + 200_000 * MS}
    baseline = {"baseline_start_ns": T0, "baseline_end_ns": T0 + 60_000 * MS}
    body = {"service": "cart", "operation": "GET /cart", "signal": "latency", **window, **baseline}
    answer = httpx.post(spyglass.api + "/api/v1/explain", json=body, timeout=30).json()
    findings = answer["findings"]
    # The symptom in numbers from 100% of spans; tracked attributes get their exact counts too.
    assert answer["symptom"]["regression"]["count"] == 60 and answer["symptom"]["baseline"]["count"] == 60
    version_finding = next(f for f in findings if f.get("key") == "service.version")
    exact = version_finding["evidence"]["exact"]
    assert exact["regression"]["count"] == 30 and exact["baseline"] is None
    assert abs(exact["regression"]["p50_ms"] - 90) <= 0.9
    # The version explains all of it; whichever way explain ranks its findings, each brings its context.
    assert any(f.get("key") == "service.version" and f.get("value") == "2.0" for f in findings)
    for finding in findings:
        assert finding["logs"] and all("rebuilt from the database" in log["body"] for log in finding["logs"])
        assert finding["logs"][0]["trace_id"] in finding["examples"]["regression"]
        assert finding["events"] and finding["events"][0]["name"] == "cache miss"
        assert finding["events"][0]["trace_id"] in finding["examples"]["regression"]


def test_symptom_of_windows_shorter_than_a_rollup_bucket_is_exact(
    start_server: Callable[..., RunningServer],
) -> None:
    """Two adjacent 4 s windows inside one 10 s rollup bucket: the symptom must still tell them apart."""
    spyglass: RunningServer = start_server(decision_wait_s=30)
    tracer = provider("cart", http_exporter(spyglass.otlp_http)).get_tracer("t")
    now = time.time_ns()
    t0 = now - now % (10_000 * MS) + 10_000 * MS  # the next rollup bucket, after the server started
    for start, duration in ((t0, 10 * MS), (t0 + 4_000 * MS, 50 * MS)):
        for i in range(20):
            begin = start + i * 150 * MS
            tracer.start_span("GET /cart", kind=SpanKind.SERVER, start_time=begin).end(
                end_time=begin + duration
            )
    spyglass.wait_for(lambda s: s["spans_received"] == 40)
    body = {
        "service": "cart",
        "operation": "GET /cart",
        "signal": "latency",
        "baseline_start_ns": t0,
        "baseline_end_ns": t0 + 4_000 * MS,
        "start_ns": t0 + 4_000 * MS,
        "end_ns": t0 + 8_000 * MS,
    }
    symptom = httpx.post(spyglass.api + "/api/v1/explain", json=body, timeout=30).json()["symptom"]
    assert symptom["baseline"]["count"] == 20 and symptom["regression"]["count"] == 20
    assert symptom["baseline"]["p50_ms"] == pytest.approx(10, abs=0.01)
    assert symptom["regression"]["p50_ms"] == pytest.approx(50, abs=0.01)

"""``/api/v1/metrics`` and ``/metrics`` end to end: spans with known durations sent by the real OTel SDK over
OTLP/HTTP into a real server; counts must be exact and percentiles within 1% of the ones computed here."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from spyglass import __version__
from spyglass.store.protocol import RollupQuery
from tests.conftest import RunningServer
from tests.support.otel import http_exporter

MINUTE = 60 * 1_000_000_000
QUANTILES = {"p50_ms": 0.5, "p90_ms": 0.9, "p99_ms": 0.99}


@dataclass(frozen=True)
class Sent:
    service: str
    version: str
    operation: str
    start_ns: int
    duration_ns: int
    error: bool
    tier: str


def send(spyglass: RunningServer, spans: list[Sent]) -> None:
    """Export spans with explicit start and end times, one provider per (service, version) resource."""
    resources = sorted({(s.service, s.version) for s in spans})
    for service, version in resources:
        provider = TracerProvider(
            resource=Resource.create({"service.name": service, "service.version": version})
        )
        provider.add_span_processor(
            BatchSpanProcessor(
                http_exporter(spyglass.otlp_http), max_queue_size=100_000, max_export_batch_size=500
            )
        )
        tracer = provider.get_tracer("metrics-test")
        for s in spans:
            if (s.service, s.version) != (service, version):
                continue
            span = tracer.start_span(
                s.operation, kind=SpanKind.SERVER, start_time=s.start_ns, attributes={"customer.tier": s.tier}
            )
            if s.error:
                span.set_status(Status(StatusCode.ERROR, "failed"))
            span.end(end_time=s.start_ns + s.duration_ns)
        provider.force_flush()
        provider.shutdown()


def expected(spans: Iterable[Sent]) -> dict[str, Any]:
    """Count, errors and nearest-rank percentiles in ms (1-based rank ceil(q * n)), as the API defines them."""
    chosen = list(spans)
    ordered = np.sort([s.duration_ns for s in chosen])
    result: dict[str, Any] = {"count": len(chosen), "errors": sum(s.error for s in chosen)}
    for name, q in QUANTILES.items():
        result[name] = ordered[max(0, math.ceil(q * len(ordered)) - 1)] / 1e6
    result["max_ms"] = ordered[-1] / 1e6
    return result


def assert_matches(group: dict[str, Any], want: dict[str, Any]) -> None:
    assert group["count"] == want["count"]
    assert group["errors"] == want["errors"]
    for name in (*QUANTILES, "max_ms"):
        assert abs(group[name] - want[name]) <= 0.01 * want[name], (name, group[name], want[name])


@pytest.fixture(scope="module")
def traffic() -> tuple[int, list[Sent]]:
    """Three minutes of traffic ten minutes ago (stored rollups) and a few seconds ago (pending rollups)."""
    rng = np.random.default_rng(11)
    now = time.time_ns()
    base = now - now % MINUTE - 10 * MINUTE
    spans = []
    for i in range(900):
        version = "1.0" if i % 3 else "2.0"
        slow = 3.0 if version == "2.0" else 1.0
        spans.append(
            Sent(
                service="shop",
                version=version,
                operation="GET /cart" if i % 4 else "POST /pay",
                start_ns=base + i * 200_000_000,  # 5 per second over 3 minutes
                duration_ns=int(rng.lognormal(16, 0.8) * slow),
                error=i % 7 == 0,
                tier="gold" if i % 5 == 0 else "silver",
            )
        )
    for i in range(60):
        spans.append(
            Sent(
                "shop", "2.0", "GET /cart", now - 3_000_000_000 + i, int(rng.lognormal(14, 1)), False, "gold"
            )
        )
    spans.append(Sent("stock", "1.0", "check", now - 1_000_000_000, 5_000_000, True, "gold"))
    return base, spans


@pytest.fixture
def loaded(spyglass: RunningServer, traffic: tuple[int, list[Sent]]) -> tuple[RunningServer, int, list[Sent]]:
    base, spans = traffic
    send(spyglass, spans)
    spyglass.wait_for(lambda s: s["spans_received"] == len(spans))
    return spyglass, base, spans


def metrics(spyglass: RunningServer, **params: Any) -> dict[str, Any]:
    response = spyglass.get("/api/v1/metrics", params=params)
    assert response.status_code == 200, response.text
    return cast("dict[str, Any]", response.json())


def test_totals_and_percentiles_are_exact_from_stored_and_pending_rollups(loaded: Any) -> None:
    spyglass, base, spans = loaded
    shop = [s for s in spans if s.service == "shop"]
    body = metrics(spyglass, service="shop")
    assert body["estimated"] is False
    (group,) = body["groups"]
    assert group["key"] == "shop"
    assert_matches(group, expected(shop))
    everything = metrics(spyglass)["groups"]
    assert [g["key"] for g in everything] == ["all"] and everything[0]["count"] == len(spans)
    cart = metrics(spyglass, service="shop", operation="GET /cart")["groups"][0]
    assert cart["key"] == "shop/GET /cart"
    assert_matches(cart, expected(s for s in shop if s.operation == "GET /cart"))
    # The old buckets reach the store within about a second of closing; the answer stays the same.
    store = spyglass.server.store
    deadline = time.monotonic() + 10
    while store.rollups(RollupQuery(base, base + 3 * MINUTE, service="shop")).num_rows == 0:
        assert time.monotonic() < deadline, "rollups never reached the store"
        time.sleep(0.1)
    assert_matches(metrics(spyglass, service="shop")["groups"][0], expected(shop))


def test_group_by_operation_and_a_tracked_attribute(loaded: Any) -> None:
    spyglass, _, spans = loaded
    by_operation = metrics(spyglass, group_by="operation")
    assert [g["key"] for g in by_operation["groups"]] == ["GET /cart", "POST /pay", "check"]
    for group in by_operation["groups"]:
        assert_matches(group, expected(s for s in spans if s.operation == group["key"]))
    by_service = metrics(spyglass, group_by="service")["groups"]
    assert {g["key"]: g["count"] for g in by_service} == {"shop": len(spans) - 1, "stock": 1}
    by_version = metrics(spyglass, service="shop", group_by="service.version")
    assert by_version["estimated"] is False and by_version["group_by"] == "service.version"
    assert [g["key"] for g in by_version["groups"]] == ["1.0", "2.0"]
    for group in by_version["groups"]:
        assert_matches(group, expected(s for s in spans if s.service == "shop" and s.version == group["key"]))


def test_group_by_an_untracked_attribute_is_estimated_from_spans(loaded: Any) -> None:
    spyglass, _, spans = loaded
    spyglass.flush()  # every trace decided and stored: buffered + stored then covers each span once
    body = metrics(spyglass, service="shop", group_by="customer.tier")
    assert body["estimated"] is True
    groups = {g["key"]: g for g in body["groups"]}
    assert set(groups) == {"gold", "silver"}
    for tier, group in groups.items():
        assert_matches(group, expected(s for s in spans if s.service == "shop" and s.tier == tier))


def test_series_per_step(loaded: Any) -> None:
    spyglass, base, spans = loaded
    window = {"start_ns": base, "end_ns": base + 4 * MINUTE}
    body = metrics(spyglass, service="shop", step_s=60, **window)
    assert body["step_s"] == 60
    (group,) = body["groups"]
    assert [p["start_ns"] for p in group["series"]] == [base + m * MINUTE for m in range(4)]
    for m, point in enumerate(group["series"]):
        in_minute = [
            s
            for s in spans
            if s.service == "shop" and base + m * MINUTE <= s.start_ns < base + (m + 1) * MINUTE
        ]
        if not in_minute:
            assert point["count"] == 0 and point["p99_ms"] is None
            continue
        assert_matches(point, expected(in_minute))
    assert sum(p["count"] for p in group["series"]) == group["count"] == 900
    # Steps are whole rollup buckets: 25 s becomes 30 s for the 10 s base rollups, 60 s for attributes.
    assert metrics(spyglass, step_s=25, **window)["step_s"] == 30
    by_version = metrics(spyglass, group_by="service.version", step_s=25, **window)
    assert by_version["step_s"] == 60
    assert [len(g["series"]) for g in by_version["groups"]] == [4, 4]
    # Estimated answers read stored and undecided spans: a trace between its decision and its write is in
    # neither for a moment, so every trace is decided and stored first (as in the estimated test above).
    spyglass.flush()
    estimated = metrics(spyglass, group_by="customer.tier", step_s=30, **window)
    assert estimated["step_s"] == 30 and len(estimated["groups"][0]["series"]) == 8


def test_an_empty_window_still_has_its_group(spyglass: RunningServer) -> None:
    body = metrics(spyglass, service="nobody", step_s=600)
    assert body["groups"][0]["key"] == "nobody" and body["groups"][0]["count"] == 0
    assert body["groups"][0]["p50_ms"] is None and len(body["groups"][0]["series"]) in (6, 7)
    assert metrics(spyglass, group_by="host.name")["groups"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"start_ns": "yesterday"},
        {"step_s": "0"},
        {"step_s": "soon"},
        {"start_ns": "2", "end_ns": "1"},
        {"start_ns": "0", "end_ns": str(10**18), "step_s": "1"},
    ],
)
def test_malformed_parameters_are_400(spyglass: RunningServer, params: dict[str, str]) -> None:
    response = spyglass.get("/api/v1/metrics", params=params)
    assert response.status_code == 400
    assert response.json()["error"]


#: Every family ``/metrics`` exposes, as prometheus_client's parser names it (a counter without ``_total``,
#: its samples with it), and its type: renaming or dropping one breaks the dashboards built on it.
FAMILIES = {
    "spyglass_build_info": "gauge",
    "spyglass_spans_received": "counter",
    "spyglass_spans_rejected": "counter",
    "spyglass_traces_decided": "counter",
    "spyglass_traces_kept": "counter",
    "spyglass_spans_stored": "counter",
    "spyglass_write_failures": "counter",
    "spyglass_spans_unwritable": "counter",
    "spyglass_spans_write_failed": "counter",
    "spyglass_intake_queue_spans": "gauge",
    "spyglass_recall_buffer_bytes": "gauge",
    "spyglass_recall_buffer_spans": "gauge",
    "spyglass_recall_buffer_peak_bytes": "gauge",
    "spyglass_recall_buffer_max_bytes": "gauge",
    "spyglass_log_records_received": "counter",
    "spyglass_log_records_stored": "counter",
    "spyglass_log_records_unwritable": "counter",
    "spyglass_log_records_write_failed": "counter",
    "spyglass_aggregator_spans": "counter",
    "spyglass_aggregator_open_buckets": "gauge",
    "spyglass_store_disk_bytes": "gauge",
    "spyglass_store_free_bytes": "gauge",
    "spyglass_store_oldest_timestamp_seconds": "gauge",
    "spyglass_retention_seconds": "gauge",
    "spyglass_retention_deleted_rows": "counter",
    "spyglass_rollup_rows_downsampled": "counter",
    "spyglass_retention_passes": "counter",
    "spyglass_retention_longest_step_seconds": "gauge",
    "spyglass_store_compactions": "counter",
    "spyglass_store_compacted_bytes": "counter",
    "spyglass_store_last_compaction_pause_seconds": "gauge",
    "spyglass_span_requests": "counter",
    "spyglass_span_errors": "counter",
    "spyglass_span_duration_seconds": "histogram",
}
#: The duration histogram's ``le`` labels, exactly as written today.
HISTOGRAM_LE: tuple[str, ...] = (
    "0.001",
    "0.0025",
    "0.005",
    "0.01",
    "0.025",
    "0.05",
    "0.1",
    "0.25",
    "0.5",
    "1.0",
    "2.5",
    "5.0",
    "10.0",
)
HISTOGRAM_LE += ("30.0", "60.0", "+Inf")
#: A service and an operation carrying every character the text format must escape.
HOSTILE_SERVICE = 'we"ird\\svc\nname'
HOSTILE_OPERATION = 'op "x"\\y\nz'

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


def exposition(families: Iterable[Any]) -> tuple[dict[str, str], Samples]:
    """Families (name -> type) and samples ((name, labels) -> value) as prometheus_client's parser reads them."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in families:
        types[family.name] = family.type
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, key
            samples[key] = sample.value
    return types, samples


def scrape(spyglass: RunningServer) -> tuple[dict[str, str], Samples]:
    response = spyglass.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return exposition(text_string_to_metric_families(response.text))


def test_prometheus_exposition(loaded: Any) -> None:
    spyglass, _, spans = loaded
    send(spyglass, [Sent(HOSTILE_SERVICE, "1", HOSTILE_OPERATION, time.time_ns(), 2_000_000, True, "gold")])
    spyglass.wait_for(lambda s: s["spans_received"] == len(spans) + 1)
    types, samples = scrape(spyglass)
    assert types == FAMILIES
    assert samples[("spyglass_build_info", labels(version=__version__))] == 1
    assert samples[("spyglass_spans_received_total", labels())] == len(spans) + 1
    assert samples[("spyglass_aggregator_spans_total", labels())] == len(spans) + 1
    for name in (
        "spyglass_spans_rejected_total",
        "spyglass_traces_decided_total",
        "spyglass_traces_kept_total",
        "spyglass_spans_stored_total",
        "spyglass_write_failures_total",
        "spyglass_spans_unwritable_total",
        "spyglass_spans_write_failed_total",
        "spyglass_intake_queue_spans",
        "spyglass_recall_buffer_bytes",
        "spyglass_recall_buffer_spans",
        "spyglass_recall_buffer_peak_bytes",
        "spyglass_recall_buffer_max_bytes",
        "spyglass_log_records_received_total",
        "spyglass_log_records_stored_total",
        "spyglass_log_records_unwritable_total",
        "spyglass_log_records_write_failed_total",
        "spyglass_aggregator_open_buckets",
    ):
        assert (name, labels()) in samples, name
    assert samples[("spyglass_recall_buffer_max_bytes", labels())] > 0
    cart = labels(service="shop", operation="GET /cart")
    want = expected(s for s in spans if s.service == "shop" and s.operation == "GET /cart")
    assert samples[("spyglass_span_requests_total", cart)] == want["count"]
    assert samples[("spyglass_span_errors_total", cart)] == want["errors"]
    assert samples[("spyglass_span_duration_seconds_count", cart)] == want["count"]
    assert samples[("spyglass_span_duration_seconds_bucket", cart | labels(le="+Inf"))] == want["count"]
    durations = [s.duration_ns for s in spans if s.service == "shop" and s.operation == "GET /cart"]
    assert (
        abs(samples[("spyglass_span_duration_seconds_sum", cart)] - sum(durations) / 1e9)
        <= 0.005 * sum(durations) / 1e9
    )
    buckets = [
        samples[("spyglass_span_duration_seconds_bucket", cart | labels(le=le))] for le in HISTOGRAM_LE
    ]
    assert buckets == sorted(buckets)
    odd = labels(service=HOSTILE_SERVICE, operation=HOSTILE_OPERATION)
    assert samples[("spyglass_span_requests_total", odd)] == 1
    assert samples[("spyglass_span_errors_total", odd)] == 1
    assert samples[("spyglass_span_duration_seconds_count", odd)] == 1
    assert samples[("spyglass_span_duration_seconds_bucket", odd | labels(le="0.0025"))] == 1
    assert samples[("spyglass_span_duration_seconds_bucket", odd | labels(le="0.001"))] == 0
    series = {dict(key[1])["service"] for key in samples if key[0] == "spyglass_span_requests_total"}
    assert series == {"shop", "stock", HOSTILE_SERVICE}


def test_prometheus_exposition_in_openmetrics_when_asked(spyglass: RunningServer) -> None:
    now = time.time_ns()
    send(
        spyglass,
        [
            Sent("shop", "1", "GET /cart", now, 3_000_000, False, "gold"),
            Sent(HOSTILE_SERVICE, "1", HOSTILE_OPERATION, now, 40_000_000, True, "gold"),
        ],
    )
    spyglass.wait_for(lambda s: s["spans_received"] == 2)
    response = spyglass.get(
        "/metrics", headers={"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    # prometheus_client's OpenMetrics parser is unannotated (its Prometheus-text twin is typed).
    types, samples = exposition(openmetrics_families(response.text))  # type: ignore[no-untyped-call]
    text_types, text_samples = scrape(spyglass)
    # Prometheus stores the same series whichever format it asked for.
    assert types == text_types == FAMILIES
    assert samples.keys() == text_samples.keys()
    odd = labels(service=HOSTILE_SERVICE, operation=HOSTILE_OPERATION)
    for key in (
        ("spyglass_span_requests_total", odd),
        ("spyglass_span_errors_total", odd),
        ("spyglass_span_duration_seconds_bucket", odd | labels(le="0.025")),
        ("spyglass_span_duration_seconds_bucket", odd | labels(le="0.05")),
        ("spyglass_span_duration_seconds_sum", odd),
    ):
        assert samples[key] == text_samples[key], key
    assert samples[("spyglass_span_errors_total", odd)] == 1
    assert samples[("spyglass_span_duration_seconds_bucket", odd | labels(le="0.025"))] == 0
    assert samples[("spyglass_span_duration_seconds_bucket", odd | labels(le="0.05"))] == 1


def test_rollups_still_open_at_stop_are_written_and_answer_after_a_restart(
    start_server: Any, tmp_path: Any
) -> None:
    from spyglass.server import SpyglassServer, loopback_config

    server = SpyglassServer(loopback_config(tmp_path / "kept", decision_wait_s=3600))
    first = RunningServer(server, server.start_in_thread(), tmp_path / "kept")
    now = time.time_ns()
    spans = [
        Sent("shop", "1.0", "GET /", now - 2_000_000_000 + i, 1_000_000 * (i + 1), i == 3, "x")
        for i in range(40)
    ]
    send(first, spans)
    first.wait_for(lambda s: s["spans_received"] == len(spans))
    server.stop_thread()  # everything still buffered or aggregated is written out
    second = start_server(data_dir=tmp_path / "kept")
    body = metrics(second, service="shop", group_by="service.version")
    assert_matches(body["groups"][0], expected(spans))
    assert body["groups"][0]["key"] == "1.0"


def test_openapi_describes_metrics(spyglass: RunningServer) -> None:
    paths = spyglass.get("/openapi.json").json()["paths"]
    names = [p["name"] for p in paths["/api/v1/metrics"]["get"]["parameters"]]
    assert names == ["service", "operation", "start_ns", "end_ns", "group_by", "step_s", "kind"]


def test_recent_windows_group_by_any_attribute_exactly_from_the_recall_buffer(start_server: Any) -> None:
    """At a low sample rate, the last minutes are still grouped exactly: the buffer holds every span."""
    spyglass = start_server(sample_rate=0.1, decision_wait_s=0.1)
    window_start = time.time_ns()
    tracer, _, _ = _recording_tracer(spyglass)
    for index in range(200):
        with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER) as span:
            span.set_attribute("cart.coupon", f"code-{index % 4}")
    spyglass.wait_for(lambda s: s["spans_received"] == 200)
    spyglass.flush()
    assert spyglass.status()["traces_kept"] < 200
    result = spyglass.get(
        "/api/v1/metrics", params={"group_by": "cart.coupon", "start_ns": window_start}
    ).json()
    assert result["estimated"] is False
    assert {g["key"]: g["count"] for g in result["groups"]} == {f"code-{i}": 50 for i in range(4)}


def _recording_tracer(spyglass: RunningServer) -> tuple[Any, Any, Any]:
    from tests.support.otel import provider

    tracer_provider = provider("cart", http_exporter(spyglass.otlp_http))
    return tracer_provider.get_tracer("t"), None, tracer_provider

"""The answer models (``spyglass.api.models``) describe what the routes really send: a real server is fed traces
with errors, events, links, logs, an n+1 query and a new ``service.version``; every query route's answer must
validate against its model, strictly (a JSON float is no integer, a string no number) and as JSON Schema (an
undeclared key fails: every model forbids extra keys)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer
from pydantic import BaseModel

from spyglass.api import models
from spyglass.api.models import (
    CompareResponse,
    CriticalPathAnswer,
    DependenciesAnswer,
    DeploymentsAnswer,
    ErrorAnswer,
    ExplainRequest,
    ExplainResponse,
    Heatmap,
    JaegerDependenciesAnswer,
    JaegerErrorAnswer,
    JaegerNamesAnswer,
    JaegerOperationsAnswer,
    JaegerTracesAnswer,
    LogsAnswer,
    Metrics,
    OperationsAnswer,
    ServiceOverviewAnswer,
    ServicesAnswer,
    StatusAnswer,
    TraceAnswer,
    TraceColumns,
    TraceCriticalPathAnswer,
    TracePage,
    TraceSearchAnswer,
)
from spyglass.api.trace_pages import STREAM_ABOVE_SPANS
from tests.conftest import RunningServer
from tests.e2e.test_logs import python_logger
from tests.support.otel import record

try:
    import jsonschema
except ImportError:  # a dev dependency's dependency: the strict pydantic check still runs without it
    jsonschema = None

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MS = 1_000_000
NOW_NS = time.time_ns()
#: Twenty minutes ago on a whole minute: inside every route's default window (the last hour).
T0 = NOW_NS - NOW_NS % (60_000 * MS) - 20 * 60_000 * MS
BASELINE = {"baseline_start_ns": T0, "baseline_end_ns": T0 + 60_000 * MS}
REGRESSION = {"start_ns": T0 + 100_000 * MS, "end_ns": T0 + 200_000 * MS}
WINDOW = {"start_ns": T0 - 60_000 * MS, "end_ns": T0 + 300_000 * MS}
UNKNOWN_TRACE = "0123456789abcdef0123456789abcdef"
#: Spans of the big trace: one more than ``spyglass.api.trace_pages.STREAM_ABOVE_SPANS``.
BIG_TRACE_SPANS = STREAM_ABOVE_SPANS + 1


@dataclass
class Fed:
    server: RunningServer
    slow_trace: str  # version 2.0: an error, an event, a log record, eight sequential queries (n+1)
    fast_trace: str
    linked_trace: str  # links to the slow trace's root
    slow_root: str  # the slow trace's root span id
    big_trace: str  # more spans than the plain answer holds whole: streamed

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.server.api + path, params=params, timeout=30)

    def explain(self, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.server.api + "/api/v1/explain", json=body, timeout=60)


def _request(
    tracers: dict[str, Tracer], i: int, begin: int, slow: bool, version: str, logger: logging.Logger
) -> trace.Span:
    """One ``GET /cart``: a priced call to the pricing service, item queries (eight when slow), and when slow
    an error, a span event and a log record."""
    cart = tracers[version]
    root = cart.start_span(
        "GET /cart",
        kind=SpanKind.SERVER,
        start_time=begin,
        attributes={
            "http.route": "/cart",
            "customer.tier": "free" if i % 3 == 0 else "gold",
            "cart.items": i,
            "cart.checksum": 2**60 + i,  # beyond JavaScript's integers: Jaeger writes it as a string
            "cart.ratio": 0.5,
            "cart.coupon": i % 2 == 0,
            "cart.skus": ["a", "b"],
        },
    )
    in_root = trace.set_span_in_context(root)
    client = cart.start_span("POST /price", context=in_root, kind=SpanKind.CLIENT, start_time=begin + MS)
    tracers["pricing"].start_span(
        "POST /price",
        context=trace.set_span_in_context(client),
        kind=SpanKind.SERVER,
        start_time=begin + 2 * MS,
    ).end(end_time=begin + 5 * MS)
    client.end(end_time=begin + 6 * MS)
    for k in range(8 if slow else 1):
        start = begin + 7 * MS + k * 10 * MS
        query = cart.start_span(
            "SELECT item",
            context=in_root,
            kind=SpanKind.CLIENT,
            start_time=start,
            attributes={"db.system": "postgres"},
        )
        query.end(end_time=start + 9 * MS)
    if slow:
        root.add_event("cache miss", {"key": f"cart:{i}"}, timestamp=begin + MS)
        root.set_status(Status(StatusCode.ERROR, "slow path"))
        with trace.use_span(root):
            logger.warning("cart %d rebuilt from the database", i)
    root.end(end_time=begin + (90 if slow else 20) * MS)
    return root


def _feed(server: RunningServer) -> Fed:
    exporters: list[InMemorySpanExporter] = []
    tracers: dict[str, Tracer] = {}
    for name, service, resource in (
        ("1.0", "cart", {"service.version": "1.0", "team": "checkout"}),
        ("2.0", "cart", {"service.version": "2.0", "team": "checkout"}),
        ("pricing", "pricing", {}),
    ):
        tracers[name], exporter, _ = record(service, **resource)
        exporters.append(exporter)
    roots: dict[str, list[trace.Span]] = {"slow": [], "fast": []}
    with python_logger("cart", OTLPLogExporter(endpoint=server.otlp_http + "/v1/logs")) as logger:
        for phase_start, regression in ((T0, False), (REGRESSION["start_ns"], True)):
            for i in range(60):
                version = "2.0" if regression and i % 2 == 0 else "1.0"
                slow = version == "2.0"
                root = _request(tracers, i, phase_start + i * 500 * MS, slow, version, logger)
                roots["slow" if slow else "fast"].append(root)
    slow_root = roots["slow"][0]
    linked = tracers["1.0"].start_span(
        "POST /checkout",
        kind=SpanKind.SERVER,
        start_time=T0 + 250_000 * MS,
        links=[Link(slow_root.get_span_context(), {"link.reason": "retry"})],
    )
    linked.end(end_time=T0 + 250_000 * MS + 3 * MS)
    batch, batch_exporter, _ = record("batch")
    exporters.append(batch_exporter)
    job = batch.start_span("run nightly-batch", start_time=T0 + 260_000 * MS)
    in_job = trace.set_span_in_context(job)
    for k in range(BIG_TRACE_SPANS - 1):
        batch.start_span("handle record", context=in_job, start_time=T0 + 260_000 * MS + k).end(
            end_time=T0 + 260_000 * MS + k + MS
        )
    job.end(end_time=T0 + 262_000 * MS)
    spans = [span for exporter in exporters for span in exporter.get_finished_spans()]
    response = httpx.post(
        server.otlp_http + "/v1/traces",
        content=encode_spans(spans).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    server.wait_for(lambda s: s["spans_received"] == len(spans))
    server.flush()
    server.server.log_writer.flush()
    return Fed(
        server,
        slow_trace=f"{slow_root.get_span_context().trace_id:032x}",
        fast_trace=f"{roots['fast'][0].get_span_context().trace_id:032x}",
        linked_trace=f"{linked.get_span_context().trace_id:032x}",
        slow_root=f"{slow_root.get_span_context().span_id:016x}",
        big_trace=f"{job.get_span_context().trace_id:032x}",
    )


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    from spyglass.server import SpyglassServer, loopback_config

    directory = tmp_path_factory.mktemp("models-data")
    instance = SpyglassServer(loopback_config(directory, decision_wait_s=0.2))
    ports = instance.start_in_thread()
    try:
        yield _feed(RunningServer(instance, ports, directory))
    finally:
        instance.stop_thread()


def conforms(model: type[BaseModel], response: httpx.Response, status: int = 200) -> Any:
    """The answer validates against ``model`` strictly and against its JSON Schema; returns the parsed JSON."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    model.model_validate_json(response.content, strict=True)
    body = response.json()
    if jsonschema is not None:
        jsonschema.Draft202012Validator(model.model_json_schema(mode="serialization")).validate(body)
    return body


def _cases() -> dict[str, tuple[type[BaseModel], Callable[[Fed], httpx.Response], int]]:
    cart_root = {"service": "cart", "operation": "GET /cart"}
    us = {"start": WINDOW["start_ns"] // 1_000, "end": WINDOW["end_ns"] // 1_000}
    return {
        "status": (StatusAnswer, lambda f: f.get("/api/v1/status"), 200),
        "services": (ServicesAnswer, lambda f: f.get("/api/v1/services"), 200),
        "operations": (OperationsAnswer, lambda f: f.get("/api/v1/services/cart/operations"), 200),
        "trace": (TraceAnswer, lambda f: f.get(f"/api/v1/traces/{f.slow_trace}"), 200),
        "trace-linking": (TraceAnswer, lambda f: f.get(f"/api/v1/traces/{f.linked_trace}"), 200),
        "trace-streamed": (TraceAnswer, lambda f: f.get(f"/api/v1/traces/{f.big_trace}"), 200),
        "trace-columns": (
            TraceColumns,
            lambda f: f.get(f"/api/v1/traces/{f.slow_trace}", format="columns"),
            200,
        ),
        "trace-columns-spans": (
            TraceColumns,
            lambda f: f.get(f"/api/v1/traces/{f.slow_trace}", format="columns", spans_up_to=1000),
            200,
        ),
        "trace-page": (TracePage, lambda f: f.get(f"/api/v1/traces/{f.slow_trace}", offset=0, limit=2), 200),
        "trace-last-page": (
            TracePage,
            lambda f: f.get(f"/api/v1/traces/{f.slow_trace}", offset=10, limit=5),
            200,
        ),
        "trace-span": (
            TraceAnswer,
            lambda f: f.get(f"/api/v1/traces/{f.slow_trace}", span_id=f.slow_root),
            200,
        ),
        "trace-logs": (LogsAnswer, lambda f: f.get(f"/api/v1/traces/{f.slow_trace}/logs"), 200),
        "search": (TraceSearchAnswer, lambda f: f.get("/api/v1/traces", service="cart", limit=50), 200),
        "search-errors": (TraceSearchAnswer, lambda f: f.get("/api/v1/traces", error="true", **WINDOW), 200),
        "dependencies": (DependenciesAnswer, lambda f: f.get("/api/v1/dependencies"), 200),
        "metrics": (Metrics, lambda f: f.get("/api/v1/metrics", **WINDOW), 200),
        "metrics-by-service": (
            Metrics,
            lambda f: f.get("/api/v1/metrics", group_by="service", **WINDOW),
            200,
        ),
        "metrics-series": (
            Metrics,
            lambda f: f.get("/api/v1/metrics", step_s=60, service="cart", **WINDOW),
            200,
        ),
        "metrics-by-version": (
            Metrics,
            lambda f: f.get("/api/v1/metrics", group_by="service.version", step_s=60, **WINDOW),
            200,
        ),
        "metrics-estimated": (
            Metrics,
            lambda f: f.get("/api/v1/metrics", group_by="customer.tier", **WINDOW),
            200,
        ),
        "explain-latency": (
            ExplainResponse,
            lambda f: f.explain({**cart_root, **REGRESSION, **BASELINE}),
            200,
        ),
        "explain-errors": (
            ExplainResponse,
            lambda f: f.explain({**cart_root, **REGRESSION, **BASELINE, "signal": "errors"}),
            200,
        ),
        "explain-empty": (
            ExplainResponse,
            lambda f: f.explain(
                {
                    **cart_root,
                    "start_ns": 3_000,
                    "end_ns": 4_000,
                    "baseline_start_ns": 1_000,
                    "baseline_end_ns": 2_000,
                }
            ),
            200,
        ),
        "critical-path": (
            CriticalPathAnswer,
            lambda f: f.get("/api/v1/critical-path", **cart_root, **WINDOW),
            200,
        ),
        "critical-path-none": (
            CriticalPathAnswer,
            lambda f: f.get("/api/v1/critical-path", service="cart", operation="nothing", **WINDOW),
            200,
        ),
        "trace-critical-path": (
            TraceCriticalPathAnswer,
            lambda f: f.get(f"/api/v1/traces/{f.slow_trace}/critical-path"),
            200,
        ),
        "compare": (
            CompareResponse,
            lambda f: f.get("/api/v1/compare", a=f.fast_trace, b=f"{f.slow_trace},{f.linked_trace}"),
            200,
        ),
        "ui-services": (ServiceOverviewAnswer, lambda f: f.get("/api/v1/ui/services", **WINDOW), 200),
        "ui-heatmap": (Heatmap, lambda f: f.get("/api/v1/ui/latency-heatmap", service="cart", **WINDOW), 200),
        "ui-heatmap-empty": (
            Heatmap,
            lambda f: f.get("/api/v1/ui/latency-heatmap", service="nobody", **WINDOW),
            200,
        ),
        "ui-deployments": (DeploymentsAnswer, lambda f: f.get("/api/v1/ui/deployments", **WINDOW), 200),
        "jaeger-services": (JaegerNamesAnswer, lambda f: f.get("/api/services"), 200),
        "jaeger-service-operations": (
            JaegerNamesAnswer,
            lambda f: f.get("/api/services/cart/operations"),
            200,
        ),
        "jaeger-operations": (
            JaegerOperationsAnswer,
            lambda f: f.get("/api/operations", service="cart"),
            200,
        ),
        "jaeger-trace": (JaegerTracesAnswer, lambda f: f.get(f"/api/traces/{f.slow_trace}"), 200),
        "jaeger-trace-linking": (JaegerTracesAnswer, lambda f: f.get(f"/api/traces/{f.linked_trace}"), 200),
        "jaeger-search": (
            JaegerTracesAnswer,
            lambda f: f.get("/api/traces", service="cart", limit=5, **us),
            200,
        ),
        "jaeger-by-id": (
            JaegerTracesAnswer,
            lambda f: httpx.get(
                f.server.api + "/api/traces", params=[("traceID", f.slow_trace), ("traceID", UNKNOWN_TRACE)]
            ),
            200,
        ),
        "jaeger-dependencies": (JaegerDependenciesAnswer, lambda f: f.get("/api/dependencies"), 200),
        "error-400": (ErrorAnswer, lambda f: f.get("/api/v1/traces/not-a-trace-id"), 400),
        "error-400-parameter": (ErrorAnswer, lambda f: f.get("/api/v1/metrics", step_s="often"), 400),
        "error-404": (ErrorAnswer, lambda f: f.get(f"/api/v1/traces/{UNKNOWN_TRACE}"), 404),
        "error-404-critical-path": (
            ErrorAnswer,
            lambda f: f.get(f"/api/v1/traces/{UNKNOWN_TRACE}/critical-path"),
            404,
        ),
        "error-400-explain": (
            ErrorAnswer,
            lambda f: f.explain({**cart_root, **REGRESSION, "signal": "cpu"}),
            400,
        ),
        "jaeger-error-400": (JaegerErrorAnswer, lambda f: f.get("/api/traces"), 400),
        "jaeger-error-404": (JaegerErrorAnswer, lambda f: f.get(f"/api/traces/{UNKNOWN_TRACE}"), 404),
    }


CASES = _cases()


@pytest.mark.parametrize("case", list(CASES))
def test_answer_conforms_to_its_model(fed: Fed, case: str) -> None:
    model, call, status = CASES[case]
    conforms(model, call(fed), status)


def test_the_optional_parts_were_exercised(fed: Fed) -> None:
    """The cases above reach the answers' optional keys, so their models were checked where it matters."""
    _, call, _ = CASES["trace-columns"]
    assert "spans" not in call(fed).json()
    _, call, _ = CASES["trace-columns-spans"]
    assert call(fed).json()["spans"]
    spans = fed.get(f"/api/v1/traces/{fed.linked_trace}").json()["spans"]
    assert spans[0]["links"] and spans[0]["links"][0]["attributes"] == {"link.reason": "retry"}
    slow = fed.get(f"/api/v1/traces/{fed.slow_trace}").json()["spans"]
    assert any(span["events"] for span in slow) and any(span["status"] == "error" for span in slow)
    assert fed.get(f"/api/v1/traces/{fed.slow_trace}/logs").json()["logs"]
    edges = fed.get("/api/v1/dependencies").json()["edges"]
    assert {e["uninstrumented"] for e in edges} == {True, False}
    versions = fed.get("/api/v1/ui/deployments", **WINDOW).json()["versions"]
    assert any(v["deployed"] for v in versions)
    series = fed.get("/api/v1/metrics", step_s=60, service="cart", **WINDOW).json()
    assert series["groups"][0]["series"] and "step_s" in series
    assert (
        fed.get("/api/v1/metrics", group_by="customer.tier", **WINDOW).json()["group_by"] == "customer.tier"
    )
    streamed = fed.get(f"/api/v1/traces/{fed.big_trace}")
    assert "content-length" not in streamed.headers and len(streamed.json()["spans"]) == BIG_TRACE_SPANS
    answer = fed.explain({"service": "cart", "operation": "GET /cart", **REGRESSION, **BASELINE}).json()
    findings = answer["findings"]
    assert findings and all(f["logs"] and f["events"] for f in findings)
    assert any("exact" in f["evidence"] for f in findings)
    assert "rate_per_s" not in answer["symptom"]["regression"]
    by_id = httpx.get(fed.server.api + "/api/traces", params=[("traceID", UNKNOWN_TRACE)]).json()
    assert by_id["errors"] == [{"msg": "trace not found", "traceID": UNKNOWN_TRACE}]
    tags = {
        t["key"]: t
        for s in fed.get(f"/api/traces/{fed.slow_trace}").json()["data"][0]["spans"]
        for t in s["tags"]
    }
    assert tags["cart.checksum"]["type"] == "int64" and isinstance(tags["cart.checksum"]["value"], str)


def test_a_cluster_status_and_a_partial_answer_conform(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    """A cluster's status tells its members apart; an answer missing a member's data says which member."""
    peers_file = tmp_path / "peers.txt"
    peers_file.write_text("")
    members = [start_server(peers_file=peers_file) for _ in range(2)]
    peers_file.write_text("\n".join(member.api for member in members) + "\n")
    stamp = time.time_ns()
    os.utime(peers_file, ns=(stamp, stamp))  # a fresh modification time, whatever the clock's resolution
    for member in members:
        assert member.server.cluster is not None
        member.server.cluster.membership.poll()  # now, rather than at its next look at the file
    status = conforms(StatusAnswer, members[0].get("/api/v1/status"))
    assert len(status["cluster"]["by_member"]) == 2
    members[1].server.stop_thread()
    partial = conforms(TraceSearchAnswer, members[0].get("/api/v1/traces"))
    assert partial["partial"] is True and partial["missing_peers"] == [members[1].api]
    conforms(ErrorAnswer, members[0].get(f"/api/v1/traces/{UNKNOWN_TRACE}"), 404)
    conforms(StatusAnswer, members[0].get("/api/v1/status"))


def test_every_answer_model_forbids_undeclared_keys() -> None:
    """``additionalProperties: false`` on every model in the document (the request body alone takes extras)."""
    schemas: dict[str, Any] = {}
    for name in models.__all__:
        value = getattr(models, name)
        if isinstance(value, type) and issubclass(value, BaseModel):
            schemas.update(value.model_json_schema(mode="serialization").get("$defs", {}))
            schemas[value.__name__] = value.model_json_schema(mode="serialization")
    open_models = sorted(
        name for name, schema in schemas.items() if schema.get("additionalProperties") is not False
    )
    assert open_models == ["ExplainRequest"]


def test_model_names_are_unique_and_keep_the_ui_names() -> None:
    """Class names become the document's component names and the UI's type names."""
    classes = [getattr(models, name) for name in models.__all__]
    names = [c.__name__ for c in classes if isinstance(c, type) and issubclass(c, BaseModel)]
    assert len(names) == len(set(names))
    ui_names = {
        "Span",
        "TraceColumns",
        "TraceSummary",
        "MetricPoint",
        "MetricGroup",
        "Metrics",
        "ServiceOverview",
        "Heatmap",
        "VersionSeen",
        "Edge",
        "LogRecord",
        "FindingEvent",
        "Finding",
        "ExplainRequest",
        "ExplainResponse",
        "Contribution",
        "CompareSide",
        "CompareResponse",
    }
    assert ui_names <= set(names)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"end_ns": 5}, "start_ns must be before end_ns"),
        ({"baseline_end_ns": 0}, "baseline_start_ns must be before baseline_end_ns"),
        ({"service": ""}, "at least 1 character"),
        ({"start_ns": "10"}, "valid integer"),
        ({"start_ns": True}, "valid integer"),
        ({"start_ns": -1}, "greater than or equal to 0"),
        ({"end_ns": 2**63}, "less than or equal to"),
        ({"signal": "cpu"}, "'latency' or 'errors'"),
    ],
)
def test_explain_request_refuses_what_the_route_refused(change: dict[str, Any], message: str) -> None:
    good = {
        "service": "api",
        "operation": "GET /x",
        "start_ns": 10,
        "end_ns": 20,
        "baseline_start_ns": 0,
        "baseline_end_ns": 10,
        "extra": "ignored",
    }
    assert ExplainRequest.model_validate(good).signal == "latency"
    with pytest.raises(ValueError, match=message):
        ExplainRequest.model_validate({**good, **change})

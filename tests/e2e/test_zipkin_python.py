"""OpenTelemetry's Python Zipkin exporter (``opentelemetry-exporter-zipkin-json``, Zipkin v2 JSON), used unchanged
against a real spyglass: a third-party Zipkin client that writes every tag as a string, events as annotations,
the status as tags, the local endpoint it is given, and ``debug`` on every sampled span."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.conftest import RunningServer


def zipkin_provider(spyglass: RunningServer, batched: bool = False) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "py-zipkin", "service.version": "3.1"})
    )
    exporter = ZipkinExporter(endpoint=spyglass.zipkin, local_node_ipv4="10.0.0.5", local_node_port=8080)
    provider.add_span_processor(BatchSpanProcessor(exporter) if batched else SimpleSpanProcessor(exporter))
    return provider


def test_a_trace_reads_back_as_the_exporter_mapped_it(spyglass: RunningServer) -> None:
    tracer = zipkin_provider(spyglass).get_tracer("shop")
    attributes: dict[str, str | int | bool] = {"http.route": "/cart", "http.status_code": 200, "retry": True}
    with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER, attributes=attributes) as root:
        root.add_event("cache miss", {"key": "cart:42"})
        with tracer.start_as_current_span("charge", kind=SpanKind.CLIENT) as charge:
            charge.set_status(Status(StatusCode.ERROR, "card declined"))
    assert isinstance(root, ReadableSpan) and root.start_time is not None and root.end_time is not None
    trace_id = format(root.get_span_context().trace_id, "032x")
    spyglass.wait_for(lambda s: s["spans_received"] >= 2)
    spyglass.flush()

    spans = {s["name"]: s for s in spyglass.get(f"/api/v1/traces/{trace_id}").json()["spans"]}
    served, called = spans["GET /cart"], spans["charge"]
    assert (served["kind"], called["kind"]) == ("server", "client")
    assert called["parent_span_id"] == served["span_id"] == format(root.get_span_context().span_id, "016x")
    assert (called["status"], called["status_message"]) == ("error", "card declined")
    assert served["status"] == "unset"
    # Zipkin tags are strings, and stay the strings the client wrote.
    assert {k: served["attributes"][k] for k in attributes} == {
        "http.route": "/cart",
        "http.status_code": "200",
        "retry": "true",
    }
    assert served["service"] == "py-zipkin" and served["attributes"]["service.version"] == "3.1"
    assert served["resource"]["net.host.ip"] == "10.0.0.5" and served["resource"]["net.host.port"] == 8080
    # Zipkin carries microseconds (the exporter rounds to the nearest).
    assert served["start_ns"] % 1000 == 0 and abs(served["start_ns"] - root.start_time) <= 500
    assert abs(served["duration_ns"] - (root.end_time - root.start_time)) <= 1000
    (event,) = served["events"]
    assert event["name"] == '{"cache miss": {"key": "cart:42"}}'  # the annotation's value, as Zipkin shows it

    jaeger = spyglass.get(f"/api/traces/{trace_id}").json()["data"][0]
    assert {s["operationName"] for s in jaeger["spans"]} == {"GET /cart", "charge"}


def test_debug_on_every_span_does_not_keep_every_trace(start_server: Callable[..., RunningServer]) -> None:
    """The exporter marks every sampled span ``debug``: at ``--sample-rate 0.05`` its traces are sampled as any
    others, failed ones all kept, instead of every one of them kept (600 of 600 before; 33 when written)."""
    spyglass = start_server(sample_rate=0.05, decision_wait_s=0.3)
    provider = zipkin_provider(spyglass, batched=True)
    tracer = provider.get_tracer("shop")
    failed = []
    for i in range(600):
        with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER) as root:
            with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT) as query:
                if i % 100 == 50:
                    query.set_status(Status(StatusCode.ERROR, "deadlock"))
                    failed.append(format(root.get_span_context().trace_id, "032x"))
    assert provider.force_flush(30_000)
    status = spyglass.wait_for(lambda s: s["traces_decided"] >= 600, timeout_s=30)
    assert status["traces_kept"] < 300, status["traces_kept"]
    spyglass.flush()
    search = {"service": "py-zipkin", "start_ns": 0, "limit": 1000}
    stored = {t["trace_id"] for t in spyglass.get("/api/v1/traces", params=search).json()["traces"]}
    assert set(failed) <= stored

"""Spans sent by real clients over every protocol come back complete through both query APIs."""

from __future__ import annotations

import gzip
import time

import httpx
import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tests.conftest import RunningServer
from tests.support.otel import grpc_exporter, http_exporter, otlp_json, provider, record


def test_one_trace_across_services_and_protocols(spyglass: RunningServer) -> None:
    """frontend (OTLP/HTTP protobuf) -> checkout (OTLP/gRPC gzip) -> payments (OTLP/JSON gzip) -> legacy (Zipkin)."""
    frontend = provider("frontend", http_exporter(spyglass.otlp_http), **{"service.version": "2.0.1"})
    checkout = provider("checkout", grpc_exporter(spyglass.otlp_grpc, gzip=True), **{"host.name": "node-7"})
    payments_tracer, payments_spans, _ = record("payments", **{"cloud.availability_zone": "eu-west-1b"})

    with frontend.get_tracer("web").start_as_current_span(
        "GET /cart",
        kind=SpanKind.SERVER,
        attributes={"http.response.status_code": 200, "customer.vip": True, "weights": [0.5, 1.5]},
    ) as root:
        root.add_event("cache miss", {"key": "cart:42", "attempt": 2})
        with checkout.get_tracer("svc").start_as_current_span("POST /checkout", kind=SpanKind.SERVER):
            with payments_tracer.start_as_current_span(
                "charge", kind=SpanKind.CLIENT, links=[Link(root.get_span_context(), {"reason": "async"})]
            ) as charge:
                charge.set_status(Status(StatusCode.ERROR, "card declined"))
    trace_id = format(root.get_span_context().trace_id, "032x")
    charge_id = format(charge.get_span_context().span_id, "016x")
    assert isinstance(charge, ReadableSpan) and charge.start_time is not None  # an SDK span, started

    body = gzip.compress(orjson.dumps(otlp_json(list(payments_spans.get_finished_spans()))))
    response = httpx.post(
        spyglass.otlp_http + "/v1/traces",
        content=body,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {}

    zipkin_span = {
        "traceId": trace_id,
        "id": "00000000000000ab",
        "parentId": charge_id,
        "name": "authorize",
        "kind": "SERVER",
        "timestamp": charge.start_time // 1000 + 10,
        "duration": 250,
        "localEndpoint": {"serviceName": "legacy-bank", "ipv4": "10.0.0.9"},
        "tags": {"http.status_code": "402"},
    }
    response = httpx.post(spyglass.zipkin, json=[zipkin_span])
    assert response.status_code == 202, response.text

    spyglass.wait_for(lambda s: s["spans_received"] >= 4)
    spans = spyglass.get(f"/api/v1/traces/{trace_id}").json()["spans"]
    by_name = {span["name"]: span for span in spans}
    assert set(by_name) == {"GET /cart", "POST /checkout", "charge", "authorize"}
    assert {span["service"] for span in spans} == {"frontend", "checkout", "payments", "legacy-bank"}

    root_span = by_name["GET /cart"]
    assert root_span["parent_span_id"] is None and root_span["kind"] == "server"
    assert root_span["attributes"] == {
        "http.response.status_code": 200,
        "customer.vip": True,
        "weights": [0.5, 1.5],
    }
    assert root_span["resource"]["service.version"] == "2.0.1"
    assert root_span["events"][0]["name"] == "cache miss"
    assert root_span["events"][0]["attributes"] == {"key": "cart:42", "attempt": 2}
    assert by_name["POST /checkout"]["parent_span_id"] == root_span["span_id"]
    assert by_name["POST /checkout"]["resource"]["host.name"] == "node-7"
    charge_span = by_name["charge"]
    assert charge_span["parent_span_id"] == by_name["POST /checkout"]["span_id"]
    assert (charge_span["kind"], charge_span["status"], charge_span["status_message"]) == (
        "client",
        "error",
        "card declined",
    )
    assert charge_span["links"] == [
        {
            "trace_id": trace_id,
            "span_id": root_span["span_id"],
            "trace_state": "",
            "attributes": {"reason": "async"},
        }
    ]
    assert charge_span["resource"]["cloud.availability_zone"] == "eu-west-1b"
    legacy = by_name["authorize"]
    assert legacy["parent_span_id"] == charge_id and legacy["attributes"]["http.status_code"] == "402"
    assert legacy["duration_ns"] == 250_000

    # The same trace, once decided and stored, answers the search and the Jaeger API.
    spyglass.flush()
    assert spyglass.status()["spans_stored"] == 4
    stored = spyglass.get(f"/api/v1/traces/{trace_id}").json()["spans"]
    assert sorted(s["span_id"] for s in stored) == sorted(s["span_id"] for s in spans)
    found = spyglass.get("/api/v1/traces", params={"service": "frontend"}).json()["traces"]
    assert [t["trace_id"] for t in found] == [trace_id]
    assert (
        found[0]["span_count"] == 4
        and found[0]["error"] is True
        and found[0]["root_operation"] == "GET /cart"
    )
    jaeger = spyglass.get(f"/api/traces/{trace_id}").json()["data"][0]
    assert len(jaeger["spans"]) == 4
    services = {p["serviceName"] for p in jaeger["processes"].values()}
    assert services == {"frontend", "checkout", "payments", "legacy-bank"}
    jaeger_charge = next(s for s in jaeger["spans"] if s["operationName"] == "charge")
    assert {"key": "error", "type": "bool", "value": True} in jaeger_charge["tags"]
    assert {r["refType"] for r in jaeger_charge["references"]} == {"CHILD_OF", "FOLLOWS_FROM"}


def test_search_filters(spyglass: RunningServer) -> None:
    tracer, exporter, _ = record("shop", **{"service.version": "1.0"})
    for customer, delay_ms, fail in (("alice", 5, False), ("bob", 40, True), ("carol", 20, False)):
        with tracer.start_as_current_span(
            "GET /item", kind=SpanKind.SERVER, start_time=1_800_000_000_000_000_000, end_on_exit=False
        ) as span:
            span.set_attribute("customer.id", customer)
            if fail:
                span.set_status(Status(StatusCode.ERROR))
            with tracer.start_as_current_span("db", start_time=1_800_000_000_000_000_000) as db:
                db.set_attribute("db.rows", delay_ms)
                db.end(end_time=1_800_000_000_000_000_000 + delay_ms * 1_000_000)
            span.end(end_time=1_800_000_000_000_000_000 + delay_ms * 1_000_000)
    body = orjson.dumps(otlp_json(list(exporter.get_finished_spans())))
    assert (
        httpx.post(
            spyglass.otlp_http + "/v1/traces", content=body, headers={"Content-Type": "application/json"}
        ).status_code
        == 200
    )
    spyglass.wait_for(lambda s: s["spans_received"] == 6)
    spyglass.flush()

    def search(**params: object) -> list[int]:
        response = spyglass.get("/api/v1/traces", params=params)
        assert response.status_code == 200, response.text
        return sorted(t["duration_ns"] // 1_000_000 for t in response.json()["traces"])

    assert search(service="shop") == [5, 20, 40]
    assert search(service="shop", operation="GET /item", min_duration_ms=10) == [20, 40]
    assert search(service="shop", max_duration_ms=30) == [5, 20]
    assert search(error="true") == [40]
    assert search(error="false") == [5, 20]
    assert search(attr="customer.id:carol") == [20]
    assert search(attr="service.version:1.0") == [5, 20, 40]
    assert search(attr="db.rows:40") == [40]
    assert search(service="nope") == []
    assert search(start_ns=1_800_000_000_000_000_001) == []
    assert len(spyglass.get("/api/v1/traces", params={"limit": 2}).json()["traces"]) == 2
    assert spyglass.get("/api/v1/services").json() == {"services": [{"name": "shop"}]}
    jaeger = spyglass.get(
        "/api/traces",
        params={
            "service": "shop",
            "tags": '{"customer.id":"bob"}',
            "start": 1_799_999_999_000_000,
            "end": 1_800_000_001_000_000,
        },
    ).json()
    assert len(jaeger["data"]) == 1 and len(jaeger["data"][0]["spans"]) == 2
    jaeger = spyglass.get(
        "/api/traces",
        params={
            "service": "shop",
            "minDuration": "15ms",
            "start": 1_799_999_999_000_000,
            "end": 1_800_000_001_000_000,
        },
    ).json()
    assert len(jaeger["data"]) == 2
    assert spyglass.get("/api/services/shop/operations").json()["data"] == ["GET /item", "db"]


def test_a_span_that_ended_before_it_started_is_kept_lasting_0(spyglass: RunningServer) -> None:
    """The Python SDK times spans by the wall clock, which can step back between a span's start and end: such a
    span, sent by the SDK over OTLP/HTTP and gRPC and as OTLP/JSON, is stored lasting 0, and the export is
    answered with OTLP's warning (a partial success rejecting nothing), not refused."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    start = time.time_ns()
    sent: dict[str, str] = {}
    for protocol, exporter in (
        ("http", http_exporter(spyglass.otlp_http)),
        ("grpc", grpc_exporter(spyglass.otlp_grpc)),
    ):
        tracer = provider("clock", exporter).get_tracer("t")
        span = tracer.start_span(f"stepped back {protocol}", start_time=start)
        span.end(end_time=start - 3_000_000)
        sent[protocol] = format(span.get_span_context().trace_id, "032x")

    tracer, finished, _ = record("clock")
    tracer.start_span("stepped back json", start_time=start).end(end_time=start - 1)
    tracer.start_span("on time json", start_time=start).end(end_time=start + 1)
    spans = list(finished.get_finished_spans())
    response = httpx.post(
        spyglass.otlp_http + "/v1/traces", json=otlp_json(spans), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    warning = response.json()["partialSuccess"]
    assert warning["rejectedSpans"] == "0" and "kept with duration 0" in warning["errorMessage"]
    tracer.start_span("stepped back protobuf", start_time=start).end(end_time=start - 1)
    response = httpx.post(
        spyglass.otlp_http + "/v1/traces",
        content=encode_spans(list(finished.get_finished_spans())[2:]).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    answer = trace_service_pb2.ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 0
    assert answer.partial_success.error_message.endswith("kept with duration 0")
    sent["json"] = format(spans[0].context.trace_id, "032x")

    spyglass.wait_for(lambda s: s["spans_received"] >= 5)
    for protocol, trace_id in sent.items():
        (stored,) = spyglass.get(f"/api/v1/traces/{trace_id}").json()["spans"]
        assert (stored["start_ns"], stored["duration_ns"]) == (start, 0), protocol
        jaeger = spyglass.get(f"/api/traces/{trace_id}").json()["data"][0]["spans"][0]
        assert jaeger["duration"] == 0, protocol

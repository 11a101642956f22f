"""What an attacker or a broken client sends: clear refusals, and the server stays healthy and loses nothing."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.trace import SpanKind

from tests.conftest import RunningServer
from tests.support.otel import grpc_exporter, http_exporter, provider, record
from tests.support.otel import otlp_json as to_otlp_json

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def _send_good_trace(spyglass: RunningServer, name: str = "healthy") -> str:
    tracer = provider("survivor", http_exporter(spyglass.otlp_http)).get_tracer("t")
    with tracer.start_as_current_span(name, kind=SpanKind.SERVER) as span:
        pass
    return format(span.get_span_context().trace_id, "032x")


def _grpc_export(
    spyglass: RunningServer, body: bytes, metadata: tuple[tuple[str, str], ...] = ()
) -> grpc.RpcError | None:
    with grpc.insecure_channel(spyglass.otlp_grpc) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=lambda b: b,
            response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString,
        )
        try:
            export(body, metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            return error
    return None


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        (PROTOBUF, b"\xff\x00garbage", "invalid OTLP protobuf"),
        (JSON, b"{not json", "JSON"),
        (JSON, b'{"resourceSpans": "nope"}', "resourceSpans"),
        (
            JSON,
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz","spanId":"0102030405060708",'
            b'"name":"a","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}',
            "traceId",
        ),
        ({**PROTOBUF, "Content-Encoding": "gzip"}, b"not gzip at all", "gzip"),
        ({**PROTOBUF, "Content-Encoding": "br"}, b"x", "Content-Encoding"),
    ],
)
def test_malformed_otlp_http_is_400_naming_the_problem(
    spyglass: RunningServer, headers: dict[str, str], body: bytes, message: str
) -> None:
    response = httpx.post(spyglass.otlp_http + "/v1/traces", content=body, headers=headers)
    assert response.status_code == 400
    assert message in response.text


def test_unsupported_content_type_is_415(spyglass: RunningServer) -> None:
    response = httpx.post(
        spyglass.otlp_http + "/v1/traces", content=b"x", headers={"Content-Type": "text/xml"}
    )
    assert response.status_code == 415


def test_oversize_bodies_and_gzip_bombs_are_refused(start_server: Callable[..., RunningServer]) -> None:
    spyglass = start_server(max_body_bytes=1024 * 1024)
    big = b"\x0a" + b"\xff" * (2 * 1024 * 1024)
    response = httpx.post(spyglass.otlp_http + "/v1/traces", content=big, headers=PROTOBUF)
    assert response.status_code == 413 and "exceeds" in response.text
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < 1024 * 1024
    response = httpx.post(
        spyglass.otlp_http + "/v1/traces", content=bomb, headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 413 and "exceeds" in response.text

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"\xff" * 65536

    response = httpx.post(spyglass.otlp_http + "/v1/traces", content=chunks(), headers=PROTOBUF)
    assert response.status_code == 413 and "exceeds" in response.text
    error = _grpc_export(spyglass, b"\x0a" + b"\x00" * (2 * 1024 * 1024))
    assert error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    zipkin_bomb = zlib.compress(b"[" + b" " * (8 * 1024 * 1024) + b"]")
    response = httpx.post(
        spyglass.zipkin,
        content=zipkin_bomb,
        headers={"Content-Type": "application/json", "Content-Encoding": "deflate"},
    )
    assert response.status_code == 413


def test_garbage_everywhere_then_still_healthy_and_nothing_lost(spyglass: RunningServer) -> None:
    before = _send_good_trace(spyglass, "before the storm")
    spyglass.wait_for(lambda s: s["spans_received"] == 1)
    hostile = [
        b"",
        b"\x00",
        b"[]",
        b"null",
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{}]}]}]}',
        b"[" * 100_000,
        b'[{"traceId": "' + b"A" * 100_000 + b'"}]',
        b'[{"traceId":"0123456789abcdef0123456789abcdef","id":"0123456789abcdef","name":"\'; DROP TABLE spans; --",'
        b'"timestamp":"soon"}]',
    ]
    for body in hostile:
        for url, headers in (
            (spyglass.otlp_http + "/v1/traces", PROTOBUF),
            (spyglass.otlp_http + "/v1/traces", JSON),
            (spyglass.zipkin, JSON),
        ):
            response = httpx.post(url, content=body, headers=headers)
            assert response.status_code in (200, 202, 400), (url, body[:40], response.status_code)
        error = _grpc_export(spyglass, body)
        assert error is None or error.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = _grpc_export(spyglass, b"\xff\xff garbage")
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid OTLP protobuf" in error.details()

    after = _send_good_trace(spyglass, "after the storm")
    spyglass.flush()
    assert spyglass.get("/api/v1/status").status_code == 200
    for trace_id, name in ((before, "before the storm"), (after, "after the storm")):
        spans = spyglass.get(f"/api/v1/traces/{trace_id}").json()["spans"]
        assert [s["name"] for s in spans] == [name]


def test_partial_success_over_http_and_grpc(spyglass: RunningServer) -> None:
    tracer, exporter, _ = record("partial")
    with tracer.start_as_current_span("ok"):
        pass
    request = trace_service_pb2.ExportTraceServiceRequest()
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    request.CopyFrom(encode_spans(exporter.get_finished_spans()))
    bad = request.resource_spans[0].scope_spans[0].spans.add()
    bad.CopyFrom(request.resource_spans[0].scope_spans[0].spans[0])
    bad.span_id = b"\x00" * 8
    response = httpx.post(
        spyglass.otlp_http + "/v1/traces", content=request.SerializeToString(), headers=PROTOBUF
    )
    assert response.status_code == 200
    parsed = trace_service_pb2.ExportTraceServiceResponse.FromString(response.content)
    assert parsed.partial_success.rejected_spans == 1 and "spanId" in parsed.partial_success.error_message
    with grpc.insecure_channel(spyglass.otlp_grpc) as channel:
        # The generated gRPC stub module ships without type annotations or stubs.
        reply = trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=10)  # type: ignore[no-untyped-call]
    assert reply.partial_success.rejected_spans == 1
    document = to_otlp_json(list(exporter.get_finished_spans()))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"].append(
        {**document["resourceSpans"][0]["scopeSpans"][0]["spans"][0], "spanId": "zz"}
    )
    response = httpx.post(spyglass.otlp_http + "/v1/traces", json=document)
    assert response.status_code == 200 and response.json()["partialSuccess"]["rejectedSpans"] == "1"
    # Refusals count as exports are answered; received spans once the satellite takes them in (within 50 ms).
    spyglass.wait_for(lambda s: s["spans_rejected"] == 3 and s["spans_received"] == 3)


def test_tokens_guard_ingest_and_query(start_server: Callable[..., RunningServer]) -> None:
    spyglass = start_server(ingest_token="in-secret", query_token="q-secret")
    tracer = provider("guarded", http_exporter(spyglass.otlp_http)).get_tracer("t")
    with tracer.start_as_current_span("no token"):
        pass
    assert httpx.post(spyglass.otlp_http + "/v1/traces", content=b"", headers=PROTOBUF).status_code == 401
    assert httpx.post(spyglass.zipkin, json=[]).status_code == 401
    error = _grpc_export(spyglass, b"")
    assert error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED
    ok_http = provider("guarded", http_exporter(spyglass.otlp_http, token="in-secret")).get_tracer("t")
    with ok_http.start_as_current_span("with token"):
        pass
    ok_grpc = provider("guarded", grpc_exporter(spyglass.otlp_grpc, token="in-secret")).get_tracer("t")
    with ok_grpc.start_as_current_span("with token over grpc"):
        pass
    assert (
        httpx.post(spyglass.zipkin, json=[], headers={"Authorization": "Bearer in-secret"}).status_code == 202
    )
    assert spyglass.get("/api/v1/status").status_code == 401
    assert spyglass.get("/api/services").status_code == 401
    assert spyglass.get("/api/v1/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
    status = spyglass.get("/api/v1/status", headers={"Authorization": "Bearer q-secret"}).json()
    assert status["spans_received"] == 2


def test_overload_is_refused_with_retry_advice_and_accepted_data_kept(
    start_server: Callable[..., RunningServer],
) -> None:
    spyglass = start_server(max_queued_spans=5)
    first = _send_good_trace(spyglass, "accepted")
    tracer, exporter, _ = record("flood")
    for i in range(8):
        with tracer.start_as_current_span(f"s{i}"):
            pass
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    body = encode_spans(exporter.get_finished_spans()).SerializeToString()
    response = httpx.post(spyglass.otlp_http + "/v1/traces", content=body, headers=PROTOBUF)
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    error = _grpc_export(spyglass, body)
    assert error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    spyglass.flush()
    status = spyglass.status()
    assert status["spans_rejected"] == 16 and status["spans_stored"] == 1
    assert spyglass.get(f"/api/v1/traces/{first}").json()["spans"][0]["name"] == "accepted"


def test_query_api_refuses_bad_parameters_and_keeps_values_as_data(spyglass: RunningServer) -> None:
    trace_id = _send_good_trace(spyglass, "<script>alert('x')</script>")
    spyglass.flush()
    assert spyglass.get("/api/v1/traces/not-hex").status_code == 400
    assert spyglass.get("/api/v1/traces/" + "0" * 31 + "1").status_code == 404
    assert spyglass.get("/api/traces/zz").status_code == 400
    for params in (
        {"limit": "many"},
        {"min_duration_ms": "fast"},
        {"error": "maybe"},
        {"attr": "nocolon"},
        {"start_ns": "yesterday"},
        {"limit": "-1"},
    ):
        response = spyglass.get("/api/v1/traces", params=params)
        assert response.status_code == 400, params
        assert next(iter(params)) in response.json()["error"]
    for value in ("' OR 1=1 --", '"; DROP TABLE spans; --', "survivor' UNION SELECT * FROM spans --"):
        for params in ({"service": value}, {"operation": value}, {"attr": f"{value}:{value}"}):
            response = spyglass.get("/api/v1/traces", params=params)
            assert response.status_code == 200 and response.json()["traces"] == []
        assert spyglass.get("/api/traces", params={"service": value}).json()["data"] == []
    span = spyglass.get(f"/api/v1/traces/{trace_id}").json()["spans"][0]
    assert span["name"] == "<script>alert('x')</script>"
    assert len(spyglass.get("/api/v1/traces").json()["traces"]) == 1
    assert spyglass.get("/openapi.json").json()["openapi"].startswith("3.")


HUGE = "9" * 40
QUERY_PATHS = [
    "/api/v1/traces",
    "/api/v1/metrics",
    "/api/v1/dependencies",
    "/api/v1/critical-path",
    "/api/v1/ui/services",
    "/api/v1/ui/latency-heatmap",
    "/api/v1/ui/deployments",
    "/api/traces",
]


@pytest.mark.parametrize("path", QUERY_PATHS)
@pytest.mark.parametrize(
    "name", ["start_ns", "end_ns", "step_s", "limit", "min_duration_ms", "max_duration_ms", "start", "end"]
)
def test_numbers_beyond_64_bits_are_400_not_500(spyglass: RunningServer, path: str, name: str) -> None:
    for value in (HUGE, "-" + HUGE, "1e400"):
        response = spyglass.get(path, params={"service": "checkout", "operation": "GET /", name: value})
        assert response.status_code < 500, (path, name, value, response.text)


def test_explain_refuses_times_beyond_64_bits_and_survives_the_last_nanosecond(
    spyglass: RunningServer,
) -> None:
    body = {"service": "a", "operation": "b", "baseline_start_ns": 0, "baseline_end_ns": 1, "start_ns": 1}
    huge = httpx.post(spyglass.api + "/api/v1/explain", json={**body, "end_ns": 10**30})
    assert huge.status_code == 400 and "64-bit" in huge.json()["error"]
    last = httpx.post(spyglass.api + "/api/v1/explain", json={**body, "end_ns": 2**63 - 1})
    assert last.status_code == 200 and last.json()["findings"] == []

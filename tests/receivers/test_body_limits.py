"""``--max-body-bytes`` on every ingest endpoint: a body over it, as sent or once decompressed (a layer at a time
when codings are stacked), is answered 413 (the OTLP/HTTP specification's answer to a body over the server's
limit) on ``/v1/traces``, ``/v1/logs`` and Zipkin's ``/api/v2/spans``, and ``RESOURCE_EXHAUSTED`` over gRPC; a
body of exactly the limit is taken."""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Iterator
from typing import cast

import grpc
import httpx
import orjson
import pytest
from google.rpc import status_pb2

from tests.conftest import RunningServer

LIMIT = 64 * 1024
NOW_US = time.time_ns() // 1_000
TRACE_ID = "5b8efff798038103d269b633813fc60c"
JSON = "application/json"
PROTOBUF = "application/x-protobuf"


@pytest.fixture
def spyglass(start_server: Callable[..., RunningServer]) -> RunningServer:
    return start_server(max_body_bytes=LIMIT)


def padded(document: object, size: int) -> bytes:
    """A valid JSON body of exactly ``size`` bytes (whitespace after the document)."""
    body = orjson.dumps(document)
    assert len(body) <= size
    return body + b" " * (size - len(body))


def zipkin_body(size: int) -> bytes:
    span = {"traceId": TRACE_ID, "id": "00000000000000a1", "name": "get", "timestamp": NOW_US, "duration": 5}
    return padded([{**span, "localEndpoint": {"serviceName": "limits"}}], size)


def logs_body(size: int) -> bytes:
    record = {"timeUnixNano": str(NOW_US * 1000), "traceId": TRACE_ID, "body": {"stringValue": "hello"}}
    return padded({"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}, size)


def traces_body(size: int) -> bytes:
    span = {
        "traceId": TRACE_ID,
        "spanId": "00000000000000b1",
        "name": "get",
        "startTimeUnixNano": str(NOW_US * 1000),
        "endTimeUnixNano": str(NOW_US * 1000 + 5000),
    }
    return padded({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}, size)


ENDPOINTS = [
    pytest.param("otlp_http", "/v1/traces", traces_body, 200, id="otlp-traces"),
    pytest.param("otlp_http", "/v1/logs", logs_body, 200, id="otlp-logs"),
    pytest.param("zipkin", "", zipkin_body, 202, id="zipkin"),
]


def url(spyglass: RunningServer, base: str, path: str) -> str:
    return cast(str, getattr(spyglass, base)) + path


def chunks(body: bytes) -> Iterator[bytes]:
    """The body sent chunked, without a Content-Length, as Node's exporters send it."""
    for start in range(0, len(body), 8192):
        yield body[start : start + 8192]


def assert_too_large(response: httpx.Response, base: str) -> None:
    assert response.status_code == 413, (response.status_code, response.text)
    text = response.json()["message"] if base == "otlp_http" else response.json()["error"]
    assert "exceeds the limit of 65536 bytes" in text


@pytest.mark.parametrize(("base", "path", "body", "accepted"), ENDPOINTS)
def test_the_limit_holds_as_sent_chunked_and_decompressed(
    spyglass: RunningServer, base: str, path: str, body: Callable[[int], bytes], accepted: int
) -> None:
    target = url(spyglass, base, path)
    headers = {"Content-Type": JSON}
    gzipped = {**headers, "Content-Encoding": "gzip"}
    assert httpx.post(target, content=body(LIMIT), headers=headers).status_code == accepted
    assert httpx.post(target, content=gzip.compress(body(LIMIT)), headers=gzipped).status_code == accepted
    assert_too_large(httpx.post(target, content=body(LIMIT + 1), headers=headers), base)
    assert_too_large(httpx.post(target, content=chunks(body(LIMIT + 1)), headers=headers), base)
    small_but_large = gzip.compress(body(LIMIT + 1))  # a few hundred bytes on the wire
    assert len(small_but_large) < LIMIT // 10
    assert_too_large(httpx.post(target, content=small_but_large, headers=gzipped), base)
    bomb = gzip.compress(b" " * (64 * LIMIT))
    assert_too_large(httpx.post(target, content=bomb, headers=gzipped), base)
    # Codings stacked in one header (RFC 9110), the last applied undone first, each layer bounded.
    twice = {**headers, "Content-Encoding": "gzip, gzip"}
    assert (
        httpx.post(target, content=gzip.compress(gzip.compress(body(LIMIT))), headers=twice).status_code
        == accepted
    )
    assert_too_large(httpx.post(target, content=gzip.compress(bomb), headers=twice), base)
    # Nothing refused is lost or half-taken, and the server still takes what fits.
    assert httpx.post(target, content=body(LIMIT - 1), headers=headers).status_code == accepted


def test_otlp_answers_413_as_a_status_in_the_request_encoding(spyglass: RunningServer) -> None:
    for path in ("/v1/traces", "/v1/logs"):
        response = httpx.post(
            spyglass.otlp_http + path, content=b"\x0a" * (LIMIT + 1), headers={"Content-Type": PROTOBUF}
        )
        assert response.status_code == 413 and response.headers["content-type"] == PROTOBUF
        status = status_pb2.Status.FromString(response.content)
        assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0] and "exceeds" in status.message


@pytest.mark.parametrize(
    "method",
    [
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    ],
)
@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip])
def test_grpc_keeps_resource_exhausted(
    spyglass: RunningServer, method: str, compression: grpc.Compression
) -> None:
    """gRPC's own limit, on the message as received and, compressed, once decompressed."""
    with grpc.insecure_channel(spyglass.otlp_grpc) as channel:
        export = channel.unary_unary(
            method, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        with pytest.raises(grpc.RpcError) as refused:
            export(b"\x0a" * (LIMIT + 1), timeout=10, compression=compression)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

"""Odd-but-legal exports a real server must take whole: repeated attribute keys, multi-member gzip bodies, every
compression the OpenTelemetry Collector's exporters may send.

Each is sent between valid traces, and every one of those must be stored: a body one client got wrong must
never cost another client's data.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from typing import cast

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from tests.conftest import RunningServer
from tests.support.compressions import MAKERS

PROTOBUF = {"Content-Type": "application/x-protobuf"}
BASE_NS = 1_700_000_000_000_000_000


def _kv(key: str, value: str | int) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, int):
        kv.value.int_value = value
    else:
        kv.value.string_value = value
    return kv


def _trace_request(repeat_keys: bool) -> tuple[bytes, bytes]:
    """One trace of three spans; with ``repeat_keys`` every attribute list (resource, span, event, link) names
    a key twice, the second time with another value and type."""
    trace_id = os.urandom(16)
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend([_kv("service.name", "dup-svc")])
    if repeat_keys:
        resource_spans.resource.attributes.extend([_kv("host.name", "a"), _kv("host.name", "b")])
    scope_spans = resource_spans.scope_spans.add()
    if repeat_keys:
        scope_spans.scope.attributes.extend([_kv("s", "1"), _kv("s", "2")])
    parent = b""
    for i in range(3):
        span = scope_spans.spans.add(
            trace_id=trace_id,
            span_id=os.urandom(8),
            parent_span_id=parent,
            name=f"op{i}",
            kind=2,
            start_time_unix_nano=BASE_NS + i,
            end_time_unix_nano=BASE_NS + 1_000_000,
        )
        parent = span.span_id
        span.attributes.extend([_kv("k", "first")])
        if repeat_keys:
            span.attributes.extend([_kv("other", "x"), _kv("k", 2)])
            event = span.events.add(name="e", time_unix_nano=BASE_NS + 5)
            event.attributes.extend([_kv("e", "1"), _kv("e", "2")])
            link = span.links.add(trace_id=os.urandom(16), span_id=os.urandom(8))
            link.attributes.extend([_kv("l", "1"), _kv("l", "2")])
    return request.SerializeToString(), trace_id


def _logs_request(trace_id: bytes, repeat_keys: bool) -> bytes:
    request = logs_service_pb2.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend([_kv("service.name", "dup-svc")])
    record = resource_logs.scope_logs.add().log_records.add(
        time_unix_nano=BASE_NS, trace_id=trace_id, span_id=os.urandom(8), severity_number=9
    )
    record.body.string_value = "hello"
    record.attributes.extend([_kv("a", "0")] + ([_kv("a", "1")] if repeat_keys else []))
    return cast(bytes, request.SerializeToString())


def test_repeated_attribute_keys_cost_nothing_and_the_last_value_wins(spyglass: RunningServer) -> None:
    sent: list[tuple[bytes, bool]] = []
    with httpx.Client(timeout=10) as client:
        for i in range(40):
            repeat = i % 4 == 1
            body, trace_id = _trace_request(repeat)
            response = client.post(spyglass.otlp_http + "/v1/traces", content=body, headers=PROTOBUF)
            assert response.status_code == 200, response.text
            response = client.post(
                spyglass.otlp_http + "/v1/logs", content=_logs_request(trace_id, repeat), headers=PROTOBUF
            )
            assert response.status_code == 200, response.text
            sent.append((trace_id, repeat))
    spyglass.flush()
    spyglass.server.log_writer.flush()
    status = spyglass.status()
    assert status["spans_stored"] == 120 and status["spans_unwritable"] == 0
    assert status["logs"]["stored"] == 40 and status["logs"]["unwritable"] == 0
    for trace_id, repeat in sent:
        trace = spyglass.get(f"/api/v1/traces/{trace_id.hex()}").json()
        assert len(trace["spans"]) == 3
        span = trace["spans"][0]
        assert span["attributes"]["k"] == (2 if repeat else "first")
        if repeat:
            assert span["resource"]["host.name"] == "b"
            assert span["events"][0]["attributes"] == {"e": "2"}
            assert span["links"][0]["attributes"] == {"l": "2"}
        logs = spyglass.get(f"/api/v1/traces/{trace_id.hex()}/logs").json()["logs"]
        assert len(logs) == 1 and logs[0]["attributes"]["a"] == ("1" if repeat else "0")


def test_a_multi_member_gzip_body_is_read_whole(spyglass: RunningServer) -> None:
    first, first_id = _trace_request(False)
    second, second_id = _trace_request(False)
    # Two requests' bytes, concatenated, are one valid request holding both (protobuf merges repeated fields).
    body = gzip.compress(first) + gzip.compress(second)
    response = httpx.post(
        spyglass.otlp_http + "/v1/traces", content=body, headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 200, response.text
    spyglass.flush()
    for trace_id in (first_id, second_id):
        assert len(spyglass.get(f"/api/v1/traces/{trace_id.hex()}").json()["spans"]) == 3


@pytest.mark.parametrize("encoding", ["zstd", "lz4", "snappy", "x-snappy-framed", "zlib", "deflate"])
def test_every_compression_the_collector_sends_is_taken(spyglass: RunningServer, encoding: str) -> None:
    """A Collector's ``otlphttp`` exporter compresses as its ``compression`` says (gzip by default; zstd, zlib,
    deflate, snappy, lz4 by choice), and names it in ``Content-Encoding``."""
    first, first_id = _trace_request(False)
    second, second_id = _trace_request(True)
    response = httpx.post(
        spyglass.otlp_http + "/v1/traces",
        content=MAKERS[encoding]([first, second]),
        headers={**PROTOBUF, "Content-Encoding": encoding},
    )
    assert response.status_code == 200, response.text
    spyglass.flush()
    for trace_id in (first_id, second_id):
        assert len(spyglass.get(f"/api/v1/traces/{trace_id.hex()}").json()["spans"]) == 3


def test_multi_member_gzip_counts_every_member_against_the_size_bound(
    start_server: Callable[..., RunningServer],
) -> None:
    spyglass = start_server(max_body_bytes=64 * 1024)
    member = gzip.compress(b"\x0a" * 40 * 1024)  # 40 KiB each, well under the bound alone
    response = httpx.post(
        spyglass.otlp_http + "/v1/traces",
        content=member + member,
        headers={**PROTOBUF, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 413 and "exceeds" in response.text


def test_a_retried_export_shows_each_span_once(spyglass: RunningServer) -> None:
    """A client that retries an export it thought failed sends the same spans twice, in one decision round
    or across two: the trace still shows each of its spans once, every one of them."""
    bodies = [_trace_request(False) for _ in range(2)]
    with httpx.Client(timeout=10) as client:
        for body, _ in bodies:
            for _ in range(2):
                response = client.post(spyglass.otlp_http + "/v1/traces", content=body, headers=PROTOBUF)
                assert response.status_code == 200, response.text
        spyglass.flush()
        body, _ = bodies[1]
        response = client.post(spyglass.otlp_http + "/v1/traces", content=body, headers=PROTOBUF)  # late
        assert response.status_code == 200, response.text
    spyglass.flush()
    for _, trace_id in bodies:
        spans = spyglass.get(f"/api/v1/traces/{trace_id.hex()}").json()["spans"]
        assert sorted(span["name"] for span in spans) == ["op0", "op1", "op2"], spans
        jaeger = spyglass.get(f"/api/traces/{trace_id.hex()}").json()["data"][0]["spans"]
        assert sorted(span["operationName"] for span in jaeger) == ["op0", "op1", "op2"]

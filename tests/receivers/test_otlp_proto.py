"""The protobuf OTLP decoder, fed by the real OpenTelemetry SDK's own encoder and by hostile bytes."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from spyglass.model.attributes import typed_attributes
from spyglass.model.schema import SPAN_SCHEMA
from spyglass.receivers.decoders.limits import MAX_ATTRIBUTE_VALUE_BYTES, MAX_NESTING_DEPTH
from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto, decode_otlp_proto_many
from spyglass.receivers.decoders.result import DecodeError, DecodeResult


def sdk_request() -> tuple[trace_service_pb2.ExportTraceServiceRequest, list[ReadableSpan]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "checkout", "service.version": "1.4.2", "host.cpu.count": 8}
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("spyglass-tests", "1.0")
    with tracer.start_as_current_span(
        "POST /checkout",
        kind=SpanKind.SERVER,
        attributes={
            "http.status_code": 200,
            "ratio": 0.25,
            "cached": False,
            "tags": ["a", "b"],
            "ids": [1, 2],
        },
    ) as root:
        root.add_event("cart loaded", {"items": 3, "note": "<b>hi</b>"})
        with tracer.start_as_current_span(
            "SELECT cart", kind=SpanKind.CLIENT, links=[Link(root.get_span_context(), {"why": "retry"})]
        ) as child:
            child.set_status(Status(StatusCode.ERROR, "deadlock"))
    provider.shutdown()
    spans = exporter.get_finished_spans()
    return encode_spans(spans), list(spans)


def test_sdk_spans_decode_completely() -> None:
    request, sdk_spans = sdk_request()
    result = decode_otlp_proto(request.SerializeToString())
    assert result.rejected_spans == 0
    assert result.batch.schema == SPAN_SCHEMA
    rows = {r["name"]: r for r in result.batch.to_pylist()}
    root, child = rows["POST /checkout"], rows["SELECT cart"]
    sdk_root = next(s for s in sdk_spans if s.name == "POST /checkout")
    assert root["trace_id"] == sdk_root.context.trace_id.to_bytes(16, "big")
    assert root["span_id"] == sdk_root.context.span_id.to_bytes(8, "big")
    assert root["parent_span_id"] is None
    assert child["parent_span_id"] == root["span_id"]
    assert (root["kind"], child["kind"]) == (2, 3)
    assert root["service"] == "checkout"
    assert sdk_root.start_time is not None and sdk_root.end_time is not None  # the SDK sets both
    assert root["duration_ns"] == sdk_root.end_time - sdk_root.start_time
    assert typed_attributes(root["attributes"], root["attribute_types"]) == {
        "http.status_code": 200,
        "ratio": 0.25,
        "cached": False,
        "tags": ["a", "b"],
        "ids": [1, 2],
    }
    resource = typed_attributes(root["resource"], root["resource_types"])
    assert resource["service.version"] == "1.4.2" and resource["host.cpu.count"] == 8
    assert root["scope_name"] == "spyglass-tests" and root["scope_version"] == "1.0"
    (event,) = root["events"]
    assert event["name"] == "cart loaded"
    assert typed_attributes(event["attributes"], event["attribute_types"]) == {
        "items": 3,
        "note": "<b>hi</b>",
    }
    assert (child["status_code"], child["status_message"]) == (2, "deadlock")
    (link,) = child["links"]
    assert link["span_id"] == root["span_id"]
    assert typed_attributes(link["attributes"], link["attribute_types"]) == {"why": "retry"}


def _span(request: trace_service_pb2.ExportTraceServiceRequest, **fields: object) -> None:
    span = request.resource_spans[0].scope_spans[0].spans.add()
    span.trace_id = os.urandom(16)
    span.span_id = os.urandom(8)
    span.name = "op"
    span.start_time_unix_nano = 1_700_000_000_000_000_000
    span.end_time_unix_nano = 1_700_000_000_001_000_000
    for key, value in fields.items():
        setattr(span, key, value)


def _request() -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value="svc"))
    resource_spans.scope_spans.add()
    return request


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"trace_id": b"short"}, "traceId"),
        ({"trace_id": b"\0" * 16}, "traceId"),
        ({"span_id": b"\0" * 8}, "spanId"),
        ({"parent_span_id": b"123"}, "parentSpanId"),
        ({"end_time_unix_nano": 2**63}, "endTimeUnixNano"),
        ({"start_time_unix_nano": 0}, "startTimeUnixNano"),
    ],
)
def test_bad_ids_and_times_reject_the_span(fields: dict[str, object], reason: str) -> None:
    request = _request()
    _span(request, **fields)
    with pytest.raises(DecodeError, match=reason):
        decode_otlp_proto(request.SerializeToString())
    _span(request)  # one good span beside the bad one: partial success
    result = decode_otlp_proto(request.SerializeToString())
    assert (result.batch.num_rows, result.rejected_spans) == (1, 1)
    assert reason in result.error_message


def test_a_span_that_ended_before_it_started_is_kept_lasting_0_with_a_warning() -> None:
    request = _request()
    _span(request)
    _span(request, end_time_unix_nano=5)
    _span(request, end_time_unix_nano=0)
    result = decode_otlp_proto(request.SerializeToString())
    assert (result.batch.num_rows, result.rejected_spans) == (3, 0)
    assert result.batch.column("duration_ns").to_pylist() == [1_000_000, 0, 0]
    assert result.error_message == "span 1: endTimeUnixNano before startTimeUnixNano: kept with duration 0"
    # Exports decoded together: each is told of its own spans only.
    alone = _request()
    _span(alone)
    answers = decode_otlp_proto_many([alone.SerializeToString(), request.SerializeToString()])
    assert [a.error_message for a in answers if isinstance(a, DecodeResult)] == ["", result.error_message]
    _span(request, trace_id=b"short")
    both = decode_otlp_proto(request.SerializeToString())
    assert both.rejected_spans == 1 and "traceId" in both.error_message  # a rejection is told first


def test_missing_service_name_and_empty_request() -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add()
    _span(request)
    assert decode_otlp_proto(request.SerializeToString()).batch.column("service").to_pylist() == [
        "unknown_service"
    ]
    assert decode_otlp_proto(b"").batch.num_rows == 0


def test_huge_values_are_truncated_and_deep_nesting_rejected() -> None:
    request = _request()
    _span(request)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="sql", value=AnyValue(string_value="é" * MAX_ATTRIBUTE_VALUE_BYTES))
    span.name = "<script>alert(1)</script>"
    result = decode_otlp_proto(request.SerializeToString())
    value = dict(result.batch.column("attributes")[0].as_py())["sql"]
    assert len(value.encode()) <= MAX_ATTRIBUTE_VALUE_BYTES and value == "é" * len(value)
    assert result.batch.column("name")[0].as_py() == "<script>alert(1)</script>"

    nested = AnyValue(string_value="leaf")
    for _ in range(MAX_NESTING_DEPTH + 2):
        nested = AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="k", value=nested)]))
    _span(request)
    deep = request.resource_spans[0].scope_spans[0].spans[1]
    deep.attributes.add(key="deep", value=nested)
    deep.attributes.add(key="arr", value=AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1)])))
    result = decode_otlp_proto(request.SerializeToString())
    assert (result.batch.num_rows, result.rejected_spans) == (1, 1)
    assert "nested" in result.error_message


@pytest.mark.parametrize(
    "body",
    [b"\xff" * 64, b"garbage that is not protobuf", b"\x0a\xff\xff\xff\xff\x0f", bytes(range(256))],
)
def test_garbage_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_otlp_proto(body)


def test_truncated_request_is_a_decode_error() -> None:
    body = sdk_request()[0].SerializeToString()
    with pytest.raises(DecodeError):
        decode_otlp_proto(body[: len(body) // 2])


VALID_BODY = sdk_request()[0].SerializeToString()


def _check(body: bytes) -> None:
    try:
        result = decode_otlp_proto(body)
    except DecodeError:
        return
    assert result.batch.schema == SPAN_SCHEMA
    result.batch.validate(full=True)
    pa.Table.from_batches([result.batch]).to_pylist()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_fuzz_arbitrary_bytes(body: bytes) -> None:
    _check(body)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_sdk_request(data: st.DataObject) -> None:
    body = bytearray(VALID_BODY)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(body) - 1))
        body[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    _check(bytes(body[:cut]) if data.draw(st.booleans()) else bytes(body))

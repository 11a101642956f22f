"""Spans forwarded to their owner arrive as they left: encode to OTLP protobuf, decode, same rows."""

from __future__ import annotations

import pyarrow as pa
from opentelemetry.proto.common.v1 import common_pb2

from spyglass.cluster.otlp_encoder import encode_otlp_proto
from spyglass.model.builder import SpanBatchBuilder, encode_attributes
from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto
from tests.cluster.workload import mixed_traces
from tests.receivers.test_otlp_proto import sdk_request


def _round_trip(batch: pa.RecordBatch | pa.Table) -> pa.RecordBatch:
    result = decode_otlp_proto(encode_otlp_proto(batch))
    assert result.rejected_spans == 0
    return result.batch


def test_sdk_spans_round_trip_with_every_attribute_type() -> None:
    request, _ = sdk_request()
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="raw", value=common_pb2.AnyValue(bytes_value=b"\x00\x01xyz"))
    kvlist = span.attributes.add(key="kv").value.kvlist_value
    kvlist.values.add(key="a", value=common_pb2.AnyValue(double_value=1.5))
    nested = common_pb2.ArrayValue(values=[common_pb2.AnyValue(int_value=3)])
    kvlist.values.add(key="b", value=common_pb2.AnyValue(array_value=nested))
    decoded = decode_otlp_proto(request.SerializeToString()).batch
    assert decoded.column("events").to_pylist()[0] or decoded.column("events").to_pylist()[1]
    assert any(decoded.column("links").to_pylist())
    again = _round_trip(decoded)
    assert again.equals(decoded)


def test_many_resources_scopes_events_links_and_slices_round_trip() -> None:
    spans, _ = mixed_traces(50, seed=1)
    batch = spans.combine_chunks().to_batches()[0]
    assert _round_trip(batch).equals(batch)
    sliced = batch.slice(7, 40)  # forwarding filters and slices batches
    assert _round_trip(sliced).equals(sliced)
    builder = SpanBatchBuilder()
    builder.add(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        parent_span_id=None,
        service="zipkin-svc",  # a resource without service.name (Zipkin): the service is kept
        name="op",
        kind=1,
        start_ns=10**18,
        duration_ns=5,
        trace_state="k=v",
        attributes=encode_attributes(
            [("big", 2**62), ("neg", -1.25), ("t", True), ("nested", [{"x": [1, "a"]}])]
        ),
        links=[
            {
                "trace_id": b"\x03" * 16,
                "span_id": b"\x04" * 8,
                "trace_state": None,
                "attributes": [("why", '["retry"]')],
                "attribute_types": [("why", 4)],
            }
        ],
    )
    original = builder.finish()
    again = _round_trip(original)
    assert again.column("service").to_pylist() == ["zipkin-svc"]
    for name in original.schema.names:
        if name not in ("resource",):
            assert again.column(name).equals(original.column(name)), name

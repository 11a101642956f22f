"""OTLP protobuf ``ExportTraceServiceRequest`` bytes -> span batch, without a Python loop per span.

ptars (Rust) turns the whole request into one nested Arrow record; from there everything is Arrow compute:
the nested lists are flattened with their parent indices, attribute lists become the text/type maps of
``spyglass.model.schema``, and validation is a handful of vectorized masks. Only rare values (arrays,
kvlists, bytes, over-long strings) fall back to Python, and only for those values. What the logs decoder
does alike is in ``otlp_proto_columns``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from spyglass.model.schema import EVENT, LINK, SPAN_SCHEMA, SpanKind, StatusCode
from spyglass.receivers.decoders.limits import MAX_ATTRIBUTE_VALUE_BYTES, MAX_NAME_BYTES, MAX_TIME_NS
from spyglass.receivers.decoders.otlp_proto_columns import (
    MAX_TIME,
    ZERO_TIME,
    RequestParser,
    RowRejections,
    attribute_maps,
    empty_to_null,
    list_offsets,
    service_names,
    truncate_strings,
)
from spyglass.receivers.decoders.result import DecodeError, DecodeResult, only_decode_errors

__all__ = ["decode_otlp_proto"]

_parse_request = RequestParser(trace_service_pb2.ExportTraceServiceRequest, "scope_spans", "spans")
_ZERO_SPAN_ID = pa.scalar(b"\x00" * 8, pa.binary())
_MAX_KIND = max(SpanKind)
_MAX_STATUS = max(StatusCode)


@only_decode_errors("OTLP trace data")
def decode_otlp_proto(body: bytes) -> DecodeResult:
    """Decode a protobuf OTLP trace export; raise ``DecodeError`` when nothing in it can be accepted."""
    resources, scopes, spans, span_scope, span_resource = _parse_request(body)
    n = len(spans)
    if n == 0:
        return DecodeResult(pa.RecordBatch.from_pylist([], schema=SPAN_SCHEMA))

    resource_attrs = resources.field("resource").field("attributes")
    resource_values, resource_types = attribute_maps(resource_attrs)
    services = service_names(resource_values)

    reasons = RowRejections(n, "span")
    trace_id = spans.field("trace_id")
    span_id = spans.field("span_id")
    parent = spans.field("parent_span_id")
    reasons.check(_valid_id(trace_id, 16), "traceId must be 16 bytes and not all zero")
    reasons.check(_valid_id(span_id, 8), "spanId must be 8 bytes and not all zero")
    parent_len = pc.binary_length(parent)
    reasons.check(pc.or_(pc.equal(parent_len, 0), pc.equal(parent_len, 8)), "parentSpanId must be 8 bytes")
    start = spans.field("start_time_unix_nano")
    end = spans.field("end_time_unix_nano")
    reasons.check(
        pc.and_(pc.greater(start, ZERO_TIME), pc.less(start, MAX_TIME)), "startTimeUnixNano out of range"
    )
    reasons.check(pc.less(end, MAX_TIME), "endTimeUnixNano out of range")
    reasons.check(pc.greater_equal(end, start), "endTimeUnixNano before start")

    attributes, attribute_types = attribute_maps(spans.field("attributes"), reasons=reasons)
    events = _events(spans.field("events"), reasons)
    links = _links(spans.field("links"), reasons)

    status = spans.field("status")
    scope = scopes.field("scope")
    start64 = pc.cast(start, pa.int64(), safe=False)
    # An all-zero parent id means "no parent", as in the JSON decoders.
    has_parent = pc.and_(pc.equal(parent_len, 8), pc.not_equal(parent, _ZERO_SPAN_ID))
    columns: dict[str, pa.Array] = {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": pc.if_else(has_parent, parent, pa.scalar(None, pa.binary())),
        "trace_state": empty_to_null(truncate_strings(spans.field("trace_state"), MAX_ATTRIBUTE_VALUE_BYTES)),
        "service": pc.take(services, span_resource),
        "name": truncate_strings(spans.field("name"), MAX_NAME_BYTES),
        "kind": _known_enum(spans.field("kind"), _MAX_KIND),
        "start_ns": start64,
        "duration_ns": pc.subtract(pc.cast(end, pa.int64(), safe=False), start64),
        "status_code": _known_enum(status.field("code"), _MAX_STATUS),
        "status_message": empty_to_null(truncate_strings(status.field("message"), MAX_ATTRIBUTE_VALUE_BYTES)),
        "attributes": attributes,
        "attribute_types": attribute_types,
        "resource": pc.take(resource_values, span_resource),
        "resource_types": pc.take(resource_types, span_resource),
        "scope_name": empty_to_null(
            truncate_strings(pc.take(scope.field("name"), span_scope), MAX_NAME_BYTES)
        ),
        "scope_version": empty_to_null(
            truncate_strings(pc.take(scope.field("version"), span_scope), MAX_NAME_BYTES)
        ),
        "events": events,
        "links": links,
    }
    valid = reasons.valid_mask()
    # Out-of-range values of rejected spans must not fail the casts below; filter before casting ids.
    table = pa.table({k: columns[k] for k in SPAN_SCHEMA.names})
    rejected = n - int(np.count_nonzero(valid))
    if rejected:
        if rejected == n:
            raise DecodeError(reasons.first())
        table = table.filter(pa.array(valid))
    batch = table.cast(SPAN_SCHEMA, safe=False).combine_chunks().to_batches()[0]
    return DecodeResult(batch, rejected, reasons.first() if rejected else "")


def _valid_id(ids: pa.Array, size: int) -> pa.Array:
    zero = pa.scalar(b"\x00" * size, pa.binary())
    return pc.and_(pc.equal(pc.binary_length(ids), size), pc.not_equal(ids, zero))


def _known_enum(codes: pa.Array, highest: int) -> pa.Array:
    """Enum values as int8, any value outside ``0..highest`` as 0 (unspecified/unset).

    Open enums let a sender put any int32 on the wire; cut to int8 as they are, 258 would read as 2 (SERVER),
    and the stores would disagree on the rest. Jaeger's OTLP translation treats an unknown kind as unspecified.
    """
    bounds = pc.min_max(codes)
    if len(codes) and not (bounds["min"].as_py() >= 0 and bounds["max"].as_py() <= highest):
        codes = pc.if_else(pc.and_(pc.greater_equal(codes, 0), pc.less_equal(codes, highest)), codes, 0)
    return pc.cast(codes, pa.int8())


def _events(event_lists: pa.ListArray, reasons: RowRejections) -> pa.Array:
    events = event_lists.flatten()
    owners = pc.list_parent_indices(event_lists)
    times = events.field("time_unix_nano")
    latest = pc.max(times).as_py()
    if latest is not None and latest >= MAX_TIME_NS:
        _reject_owners(reasons, owners, pc.less(times, MAX_TIME), "event timeUnixNano out of range")
    values, types = attribute_maps(events.field("attributes"), reasons=reasons, owners=owners)
    structs = pa.StructArray.from_arrays(
        [
            pc.cast(times, pa.int64(), safe=False),
            truncate_strings(events.field("name"), MAX_NAME_BYTES),
            values,
            types,
        ],
        fields=list(EVENT),
    )
    return pa.ListArray.from_arrays(list_offsets(event_lists), structs, type=pa.list_(EVENT))


def _links(link_lists: pa.ListArray, reasons: RowRejections) -> pa.Array:
    links = link_lists.flatten()
    owners = pc.list_parent_indices(link_lists)
    if len(links):
        ok = pc.and_(_valid_id(links.field("trace_id"), 16), _valid_id(links.field("span_id"), 8))
        _reject_owners(reasons, owners, ok, "link ids must be 16 and 8 bytes and not all zero")
    values, types = attribute_maps(links.field("attributes"), reasons=reasons, owners=owners)
    structs = pa.StructArray.from_arrays(
        [
            links.field("trace_id"),
            links.field("span_id"),
            empty_to_null(truncate_strings(links.field("trace_state"), MAX_ATTRIBUTE_VALUE_BYTES)),
            values,
            types,
        ],
        names=[f.name for f in LINK],
    )
    return pa.ListArray.from_arrays(list_offsets(link_lists), structs)


def _reject_owners(reasons: RowRejections, owners: pa.Array, ok: pa.Array, reason: str) -> None:
    """Reject the span owning each event or link that is not ``ok`` (rare: a loop over just those)."""
    bad = ~pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
    if bad.any():
        owner_of = owners.to_numpy()
        for index in np.flatnonzero(bad):
            reasons.reject(int(owner_of[index]), reason)

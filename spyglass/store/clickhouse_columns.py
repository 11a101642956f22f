"""Between spyglass's Arrow span batches and the exporter's ``otel_traces`` columns, in both directions.

Writing is column arithmetic (numpy/pyarrow.compute, no loop per span): ids become the lowercase hex the
exporter writes, kinds and status codes its strings, events and links its parallel nested arrays. Reading is
SQL expressions that ClickHouse evaluates, so results arrive already shaped as ``STORED_SPAN_SCHEMA``: ids as
fixed-size binary, empty strings (the exporter's "absent") as nulls, strings of either exporter vintage
(``'Server'`` or ``'SPAN_KIND_SERVER'``) as the OTLP numbers.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.log_schema import LOG_SCHEMA
from spyglass.model.schema import STORED_SPAN_SCHEMA

#: OTLP numbering -> the exporter's strings (pdata's ``SpanKind.String()`` / ``StatusCode.String()``).
KIND_STRINGS = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"]
STATUS_STRINGS = ["Unset", "Ok", "Error"]
# Older exporter versions wrote the protobuf enum names; both read back as the same number.
_LEGACY_KIND_STRINGS = [f"SPAN_KIND_{name.upper()}" for name in KIND_STRINGS]
_LEGACY_STATUS_STRINGS = [f"STATUS_CODE_{name.upper()}" for name in STATUS_STRINGS]

_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
#: Byte value -> its two lowercase hex digits.
_HEX_PAIRS = np.stack([_HEX_DIGITS[np.arange(256) >> 4], _HEX_DIGITS[np.arange(256) & 15]], axis=1)


def hex_ids(ids: pa.Array) -> pa.Array:
    """Fixed-size binary ids as lowercase hex strings; nulls become ``''`` (the exporter's empty id)."""
    if not isinstance(ids, pa.FixedSizeBinaryArray):
        raise TypeError(f"ids must be fixed-size binary, got {ids.type}")
    width = ids.type.byte_width
    count = len(ids)
    data = ids.buffers()[1]
    raw = (
        np.frombuffer(data, dtype=np.uint8, count=(ids.offset + count) * width, offset=0)[
            ids.offset * width :
        ]
        if data is not None
        else np.zeros(count * width, dtype=np.uint8)
    )
    valid = (
        np.ones(count, dtype=bool) if ids.null_count == 0 else ids.is_valid().to_numpy(zero_copy_only=False)
    )
    rows = raw.reshape(count, width)[valid]
    text = _HEX_PAIRS[rows].reshape(-1)
    lengths = np.where(valid, 2 * width, 0)
    offsets = np.zeros(count + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


def _labels(codes: pa.Array, labels: list[str]) -> pa.Array:
    """Small integer codes as their label strings; codes outside the list get the first label."""
    numbers = pc.fill_null(codes, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    numbers = np.where((numbers >= 0) & (numbers < len(labels)), numbers, 0)
    return pa.array(labels, pa.string()).take(pa.array(numbers))


def _blank(strings: pa.Array) -> pa.Array:
    return pc.fill_null(strings, "")


def _nested(lists: pa.Array, fields: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """Split a list-of-structs column into parallel list columns (the shape of a ClickHouse ``Nested``)."""
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(lists) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    offsets_array = pa.array(offsets, pa.int32())
    return {name: pa.ListArray.from_arrays(offsets_array, values) for name, values in fields.items()}


def spans_to_rows(spans: pa.Table) -> pa.Table:
    """``STORED_SPAN_SCHEMA`` spans as ``otel_traces`` columns, ready for an Arrow insert."""
    spans = spans.combine_chunks()

    def column(name: str) -> pa.Array:
        chunked = spans.column(name)
        return chunked.chunk(0) if chunked.num_chunks else pa.array([], chunked.type)

    events = column("events")
    event_items = pc.list_flatten(events)
    links = column("links")
    link_items = pc.list_flatten(links)

    def item(items: pa.Array, name: str) -> pa.Array:
        return pc.struct_field(items, name)

    rows: dict[str, pa.Array] = {
        "Timestamp": column("start_ns").cast(pa.timestamp("ns", tz="UTC")),
        "TraceId": hex_ids(column("trace_id")),
        "SpanId": hex_ids(column("span_id")),
        "ParentSpanId": hex_ids(column("parent_span_id")),
        "TraceState": _blank(column("trace_state")),
        "SpanName": column("name"),
        "SpanKind": _labels(column("kind"), KIND_STRINGS),
        "ServiceName": column("service"),
        "ResourceAttributes": column("resource"),
        "ScopeName": _blank(column("scope_name")),
        "ScopeVersion": _blank(column("scope_version")),
        "SpanAttributes": column("attributes"),
        "Duration": column("duration_ns"),
        "StatusCode": _labels(column("status_code"), STATUS_STRINGS),
        "StatusMessage": _blank(column("status_message")),
        **_nested(
            events,
            {
                "Events.Timestamp": item(event_items, "time_ns").cast(pa.timestamp("ns", tz="UTC")),
                "Events.Name": _blank(item(event_items, "name")),
                "Events.Attributes": item(event_items, "attributes"),
                "EventAttributeTypes": item(event_items, "attribute_types"),
            },
        ),
        **_nested(
            links,
            {
                "Links.TraceId": hex_ids(item(link_items, "trace_id")),
                "Links.SpanId": hex_ids(item(link_items, "span_id")),
                "Links.TraceState": _blank(item(link_items, "trace_state")),
                "Links.Attributes": item(link_items, "attributes"),
                "LinkAttributeTypes": item(link_items, "attribute_types"),
            },
        ),
        "SpanAttributeTypes": column("attribute_types"),
        "ResourceAttributeTypes": column("resource_types"),
        "SampleWeight": column("sample_weight"),
    }
    return pa.table(rows)


def logs_to_rows(logs: pa.Table) -> pa.Table:
    """``LOG_SCHEMA`` records as ``otel_logs`` columns."""
    logs = logs.combine_chunks()

    def column(name: str) -> pa.Array:
        chunked = logs.column(name)
        return chunked.chunk(0) if chunked.num_chunks else pa.array([], chunked.type)

    return pa.table(
        {
            "Timestamp": column("time_ns").cast(pa.timestamp("ns", tz="UTC")),
            "ObservedTimestamp": column("observed_time_ns").cast(pa.timestamp("ns", tz="UTC")),
            "TraceId": hex_ids(column("trace_id")),
            "SpanId": hex_ids(column("span_id")),
            "SeverityText": _blank(column("severity_text")),
            "SeverityNumber": pc.max_element_wise(column("severity_number"), 0).cast(pa.uint8()),
            "ServiceName": column("service"),
            "Body": _blank(column("body")),
            "ResourceAttributes": column("resource"),
            "ResourceAttributeTypes": column("resource_types"),
            "ScopeName": _blank(column("scope_name")),
            "LogAttributes": column("attributes"),
            "LogAttributeTypes": column("attribute_types"),
        }
    )


# -- reading: one ClickHouse expression per spyglass column -------------------------------------------------


def _code(column: str, labels: list[str], legacy: list[str]) -> str:
    """A ClickHouse expression turning an exporter string column into its OTLP number (0 when unknown)."""
    names = ", ".join(f"'{label}'" for label in labels + legacy)
    numbers = ", ".join(str(i) for i in list(range(len(labels))) * 2)
    return f"toInt8(transform(toString({column}), [{names}], [{numbers}], 0))"


def _id(column: str, width: int) -> str:
    return f"toFixedString(substring(unhex({column}), 1, {width}), {width})"


def _optional_id(column: str, width: int) -> str:
    return f"if({column} = '', NULL, {_id(column, width)})"


_EVENT_TYPE = "Array(Tuple(time_ns Int64, name String, attributes Map(String, String), attribute_types Map(String, Int8)))"
_LINK_TYPE = (
    "Array(Tuple(trace_id FixedString(16), span_id FixedString(8), trace_state Nullable(String), "
    "attributes Map(String, String), attribute_types Map(String, Int8)))"
)

#: Every STORED_SPAN_SCHEMA column as an expression over ``otel_traces``. Event and link types are padded to
#: the nested arrays' length, since rows a Collector wrote have none.
SPAN_COLUMN_SQL: dict[str, str] = {
    "trace_id": _id("TraceId", 16),
    "span_id": _id("SpanId", 8),
    "parent_span_id": _optional_id("ParentSpanId", 8),
    "trace_state": "nullIf(TraceState, '')",
    "service": "toString(ServiceName)",
    "name": "toString(SpanName)",
    "kind": _code("SpanKind", KIND_STRINGS, _LEGACY_KIND_STRINGS),
    "start_ns": "toUnixTimestamp64Nano(Timestamp)",
    "duration_ns": "toInt64(Duration)",
    "status_code": _code("StatusCode", STATUS_STRINGS, _LEGACY_STATUS_STRINGS),
    "status_message": "nullIf(StatusMessage, '')",
    "attributes": "CAST(SpanAttributes, 'Map(String, String)')",
    "attribute_types": "CAST(SpanAttributeTypes, 'Map(String, Int8)')",
    "resource": "CAST(ResourceAttributes, 'Map(String, String)')",
    "resource_types": "CAST(ResourceAttributeTypes, 'Map(String, Int8)')",
    "scope_name": "nullIf(ScopeName, '')",
    "scope_version": "nullIf(ScopeVersion, '')",
    "events": (
        "CAST(arrayMap((t, n, a, y) -> tuple(toUnixTimestamp64Nano(t), toString(n), "
        "CAST(a, 'Map(String, String)'), CAST(y, 'Map(String, Int8)')), "
        "`Events.Timestamp`, `Events.Name`, `Events.Attributes`, "
        "arrayResize(EventAttributeTypes, length(`Events.Name`))), "
        f"'{_EVENT_TYPE}')"
    ),
    "links": (
        f"CAST(arrayMap((i, s, t, a, y) -> tuple({_id('i', 16)}, {_id('s', 8)}, nullIf(t, ''), "
        "CAST(a, 'Map(String, String)'), CAST(y, 'Map(String, Int8)')), "
        "`Links.TraceId`, `Links.SpanId`, `Links.TraceState`, `Links.Attributes`, "
        "arrayResize(LinkAttributeTypes, length(`Links.TraceId`))), "
        f"'{_LINK_TYPE}')"
    ),
    "sample_weight": "SampleWeight",
}
assert list(SPAN_COLUMN_SQL) == STORED_SPAN_SCHEMA.names

LOG_COLUMN_SQL: dict[str, str] = {
    "time_ns": "toUnixTimestamp64Nano(Timestamp)",
    "observed_time_ns": "toUnixTimestamp64Nano(ObservedTimestamp)",
    "trace_id": _id("TraceId", 16),
    "span_id": _optional_id("SpanId", 8),
    "severity_number": "toInt8(if(SeverityNumber > 24, 0, SeverityNumber))",
    "severity_text": "nullIf(toString(SeverityText), '')",
    "body": "nullIf(Body, '')",
    "attributes": "CAST(LogAttributes, 'Map(String, String)')",
    "attribute_types": "CAST(LogAttributeTypes, 'Map(String, Int8)')",
    "resource": "CAST(ResourceAttributes, 'Map(String, String)')",
    "resource_types": "CAST(ResourceAttributeTypes, 'Map(String, Int8)')",
    "service": "toString(ServiceName)",
    "scope_name": "nullIf(ScopeName, '')",
}
assert list(LOG_COLUMN_SQL) == LOG_SCHEMA.names


def select_list(columns: list[str], expressions: dict[str, str]) -> str:
    """``expr AS `name`, ...`` for the named columns (names come from a schema, never from a caller)."""
    return ", ".join(f"{expressions[name]} AS `{name}`" for name in columns)

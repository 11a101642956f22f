"""Span batch -> OTLP protobuf ``ExportTraceServiceRequest`` bytes, for forwarding spans to the satellite
that owns their traces.

The inverse of ``spyglass.receivers.decoders.otlp_proto``, and columnar like it: the batch becomes one nested
Arrow record shaped as ptars expects, and ptars (Rust) writes the protobuf. Consecutive spans sharing a
resource and scope share one ``ResourceSpans``, as an SDK sends them. ptars cannot write array and kvlist
values (it reads them as opaque sub-messages and writes them empty), so a request holding some is parsed
once more with protobuf and only those values are set; they are rare, and only they take a Python step.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from ptars import HandlerPool

from spyglass.model.schema import UNKNOWN_SERVICE, ValueType

_REQUEST = trace_service_pb2.ExportTraceServiceRequest
_handler = HandlerPool([trace_service_pb2.DESCRIPTOR]).get_for_message(_REQUEST.DESCRIPTOR)
_RESOURCE_SPANS: pa.ListType = _handler.schema().field("resource_spans").type
_RESOURCE_SPANS_ITEM: pa.StructType = _RESOURCE_SPANS.value_type
_RESOURCE: pa.StructType = _RESOURCE_SPANS_ITEM.field("resource").type
_SCOPE_SPANS: pa.ListType = _RESOURCE_SPANS_ITEM.field("scope_spans").type
_SCOPE_SPANS_ITEM: pa.StructType = _SCOPE_SPANS.value_type
_SCOPE: pa.StructType = _SCOPE_SPANS_ITEM.field("scope").type
_SPANS: pa.ListType = _SCOPE_SPANS_ITEM.field("spans").type
_SPAN: pa.StructType = _SPANS.value_type
_KEY_VALUES: pa.ListType = _SPAN.field("attributes").type
_KEY_VALUE: pa.StructType = _KEY_VALUES.value_type
_ANY_VALUE: pa.StructType = _KEY_VALUE.field("value").type
_NESTED_VALUES: pa.StructType = _ANY_VALUE.field("array_value").type
_EVENTS: pa.ListType = _SPAN.field("events").type
_LINKS: pa.ListType = _SPAN.field("links").type
_STATUS: pa.StructType = _SPAN.field("status").type


@dataclass
class _Nested:
    """Array and kvlist values found while building, to be set after ptars wrote the request: per list kind,
    (row of the list, position in the list, value)."""

    found: dict[str, list[tuple[int, int, common_pb2.AnyValue]]] = field(default_factory=dict)

    def add(self, where: str, entries: list[tuple[int, int, common_pb2.AnyValue]]) -> None:
        if entries:
            self.found.setdefault(where, []).extend(entries)


def encode_otlp_proto(spans: pa.Table | pa.RecordBatch) -> bytes:
    """One ``ExportTraceServiceRequest`` holding every span of ``spans`` (``SPAN_SCHEMA`` columns)."""
    batch = spans.combine_chunks().to_batches()[0] if isinstance(spans, pa.Table) else spans
    n = batch.num_rows
    if n == 0:
        return b""
    col = batch.column
    resource = _with_service_names(col("resource"), col("service"))
    resource_types = col("resource_types")
    scope_name = pc.fill_null(col("scope_name"), "")
    scope_version = pc.fill_null(col("scope_version"), "")

    # A new ResourceSpans (with one ScopeSpans) wherever resource or scope differ from the span before.
    same = (
        _same_as_previous_map(resource)
        & _same_as_previous_map(resource_types)
        & _same_as_previous(scope_name)
        & _same_as_previous(scope_version)
    )
    starts = np.flatnonzero(~same)
    group_offsets = pa.array(np.append(starts, n).astype(np.int32))
    one_each = pa.array(np.arange(len(starts) + 1, dtype=np.int32))

    nested = _Nested()
    start = pc.cast(col("start_ns"), pa.uint64())
    end = pc.cast(pc.add(col("start_ns"), col("duration_ns")), pa.uint64())
    span_structs = _struct(
        _SPAN,
        n,
        trace_id=pc.cast(col("trace_id"), pa.binary()),
        span_id=pc.cast(col("span_id"), pa.binary()),
        trace_state=pc.fill_null(col("trace_state"), ""),
        parent_span_id=pc.fill_null(pc.cast(col("parent_span_id"), pa.binary()), b""),
        name=col("name"),
        kind=pc.cast(col("kind"), pa.int32()),
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=_key_values(col("attributes"), col("attribute_types"), nested, "span"),
        events=_events(col("events"), nested),
        links=_links(col("links"), nested),
        status=_struct(
            _STATUS,
            n,
            message=pc.fill_null(col("status_message"), ""),
            code=pc.cast(col("status_code"), pa.int32()),
        ),
    )
    spans_lists = pa.ListArray.from_arrays(group_offsets, span_structs, type=_SPANS)
    first = pa.array(starts)
    scope_spans = _struct(
        _SCOPE_SPANS_ITEM,
        len(starts),
        scope=_struct(
            _SCOPE, len(starts), name=pc.take(scope_name, first), version=pc.take(scope_version, first)
        ),
        spans=spans_lists,
    )
    resource_spans = _struct(
        _RESOURCE_SPANS_ITEM,
        len(starts),
        resource=_struct(
            _RESOURCE,
            len(starts),
            attributes=_key_values(
                pc.take(resource, first), pc.take(resource_types, first), nested, "resource"
            ),
        ),
        scope_spans=pa.ListArray.from_arrays(one_each, scope_spans, type=_SCOPE_SPANS),
    )
    request = pa.ListArray.from_arrays(pa.array([0, len(starts)], pa.int32()), resource_spans)
    record = pa.RecordBatch.from_arrays([request.cast(_RESOURCE_SPANS)], names=["resource_spans"])
    body: bytes = _handler.record_batch_to_array(record)[0].as_py()
    if nested.found:
        body = _set_nested(body, nested, batch, starts)
    return body


def _set_nested(body: bytes, nested: _Nested, batch: pa.RecordBatch, starts: npt.NDArray[np.intp]) -> bytes:
    """Set the array and kvlist values ptars wrote empty, each found by its path in the request."""
    request = _REQUEST.FromString(body)
    group_of = np.searchsorted(starts, np.arange(batch.num_rows), side="right") - 1

    def span(row: int) -> Any:
        group = int(group_of[row])
        return request.resource_spans[group].scope_spans[0].spans[row - int(starts[group])]

    def owners(column: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        lists = batch.column(column)
        parents = pc.list_parent_indices(lists).to_numpy().astype(np.int64)
        offsets = _offsets_of(lists).to_numpy().astype(np.int64)
        return parents, offsets

    for where, entries in nested.found.items():
        if where in ("events", "links"):
            parents, offsets = owners(where)
        for row, position, value in entries:
            if where == "resource":
                target = request.resource_spans[row].resource.attributes
            elif where == "span":
                target = span(row).attributes
            else:
                owner = int(parents[row])
                items = span(owner).events if where == "events" else span(owner).links
                target = items[row - int(offsets[owner])].attributes
            target[position].value.CopyFrom(value)
    body = request.SerializeToString()
    return body


# -- building blocks -----------------------------------------------------------------------------------


def _struct(
    struct_type: pa.StructType, n: int, /, absent: pa.Array | None = None, **children: pa.Array
) -> pa.StructArray:
    """A struct array of ``kind``; fields not given get protobuf defaults (zero, empty, absent). ``absent``
    marks rows where the whole struct is unset (its children still hold defaults: Arrow wants no nulls in
    non-nullable children, even under a null parent)."""
    arrays = []
    for child in struct_type:
        given = children.get(child.name)
        if given is None:
            arrays.append(_default(child, n))
        else:
            arrays.append(given if given.type == child.type else given.cast(child.type))
    return pa.StructArray.from_arrays(arrays, fields=list(struct_type), mask=absent)


def _default(field: pa.Field, n: int) -> pa.Array:
    kind = field.type
    if pa.types.is_list(kind):
        empty = pa.array([], kind.value_type)
        return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), empty, type=kind)
    if pa.types.is_struct(kind):
        return _struct(kind, n, absent=pa.array(np.ones(n, bool)) if field.nullable else None)
    if pa.types.is_string(kind):
        return pa.array([""] * n, kind) if not field.nullable else pa.nulls(n, kind)
    if pa.types.is_binary(kind):
        return pa.array([b""] * n, kind) if not field.nullable else pa.nulls(n, kind)
    if field.nullable:
        return pa.nulls(n, kind)
    return pa.array(np.zeros(n), pa.float64()).cast(kind)


def _as_lists(maps: pa.Array) -> pa.ListArray:
    """A map array as the ``list<struct<key, value>>`` it is underneath (list kernels do not take maps)."""
    kind = maps.type
    if isinstance(kind, pa.MapType):
        entry = pa.struct([("key", kind.key_type), ("value", kind.item_type)])
        return maps.cast(pa.list_(entry))
    return maps


def _offsets_of(lists: pa.Array) -> pa.Array:
    lists = _as_lists(lists)
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    return pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))


def _same_as_previous(values: pa.Array) -> npt.NDArray[np.bool_]:
    same = np.zeros(len(values), dtype=bool)
    if len(values) > 1:
        same[1:] = pc.fill_null(pc.equal(values[1:], values[:-1]), False).to_numpy(zero_copy_only=False)
    return same


def _same_as_previous_map(maps: pa.Array) -> npt.NDArray[np.bool_]:
    """Row i holds the same entries, in the same order, as row i - 1 (whole maps compared, no Python loop)."""
    n = len(maps)
    same = np.zeros(n, dtype=bool)
    if n < 2:
        return same
    maps = _as_lists(maps)
    lengths = pc.fill_null(pc.list_value_length(maps), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    same[1:] = lengths[1:] == lengths[:-1]
    flat = pc.list_flatten(maps)
    if len(flat) == 0:
        return same
    parents = pc.list_parent_indices(maps).to_numpy()
    candidate = same[parents]
    entries = np.flatnonzero(candidate)
    previous = entries - lengths[parents[entries]]
    keys, items = flat.field(0), flat.field(1)
    equal = pc.and_(
        pc.equal(pc.take(keys, entries), pc.take(keys, previous)),
        pc.equal(pc.take(items, entries), pc.take(items, previous)),
    )
    differing = parents[entries[~pc.fill_null(equal, False).to_numpy(zero_copy_only=False)]]
    same[differing] = False
    return same


def _with_service_names(resource: pa.MapArray, service: pa.Array) -> pa.MapArray:
    """Spans whose resource does not name the service (rare: not from OTLP) get ``service.name`` added, so
    the owner decodes the same service."""
    named = pc.is_valid(pc.map_lookup(resource, pa.scalar("service.name"), "first"))
    missing = pc.and_(pc.invert(named), pc.not_equal(service, UNKNOWN_SERVICE))
    if not pc.any(missing).as_py():
        return resource
    rows = resource.to_pylist()
    services = service.to_pylist()
    for i in np.flatnonzero(missing.to_numpy(zero_copy_only=False)):
        rows[i] = [("service.name", services[i]), *(rows[i] or [])]
    return pa.array(rows, resource.type)


def _key_values(texts: pa.Array, types: pa.Array, nested: _Nested, where: str) -> pa.ListArray:
    """The text map and type map of ``spyglass.model.schema`` -> OTLP ``repeated KeyValue`` per row; array
    and kvlist values are left unset here and reported to ``nested`` with their row and position."""
    texts, types = _as_lists(texts), _as_lists(types)
    flat = pc.list_flatten(texts)
    keys = flat.field(0)
    values = flat.field(1)
    value_types = _entry_types(texts, types, keys)
    is_string = np.equal(value_types, ValueType.STRING)

    def of_type(kind: ValueType) -> pa.Array:
        return pa.array(np.equal(value_types, kind))

    any_values: dict[str, pa.Array] = {
        "string_value": pc.if_else(pa.array(is_string), values, None),
        "bool_value": pc.if_else(of_type(ValueType.BOOL), pc.equal(values, "true"), None),
        "int_value": pc.cast(pc.if_else(of_type(ValueType.INT), values, None), pa.int64()),
        "double_value": pc.cast(pc.if_else(of_type(ValueType.DOUBLE), values, None), pa.float64()),
    }
    is_bytes = np.equal(value_types, ValueType.BYTES)
    if is_bytes.any():
        raw: list[bytes | None] = [None] * len(flat)
        for index in np.flatnonzero(is_bytes).tolist():
            raw[index] = base64.b64decode(values[index].as_py() or "")
        any_values["bytes_value"] = pa.array(raw, pa.binary())
    structured = np.flatnonzero(np.isin(value_types, (ValueType.ARRAY, ValueType.KVLIST)))
    if len(structured):
        rows = pc.list_parent_indices(texts).to_numpy()
        offsets = _offsets_of(texts).to_numpy()
        nested.add(
            where,
            [
                (
                    int(rows[i]),
                    i - int(offsets[rows[i]]),
                    _structured_value(values[i].as_py() or "", value_types[i]),
                )
                for i in structured.tolist()
            ],
        )
    value = _struct(_ANY_VALUE, len(flat), **any_values)
    entries = _struct(_KEY_VALUE, len(flat), key=keys, value=value)
    return pa.ListArray.from_arrays(_offsets_of(texts), entries, type=_KEY_VALUES)


def _entry_types(texts: pa.ListArray, types: pa.ListArray, keys: pa.Array) -> npt.NDArray[np.int8]:
    """The ``ValueType`` of every entry of ``texts`` (entries absent from ``types`` are strings)."""
    result = np.zeros(len(keys), dtype=np.int8)
    typed = pc.list_flatten(types)
    if len(typed) == 0:
        return result
    # Match (row, key) pairs: a row number and a separator no key contains make one text per entry.
    text_rows = pc.cast(pc.list_parent_indices(texts), pa.string())
    typed_rows = pc.cast(pc.list_parent_indices(types), pa.string())
    wanted = pc.binary_join_element_wise(text_rows, keys, "\x00")
    known = pc.binary_join_element_wise(typed_rows, typed.field(0), "\x00")
    position = pc.index_in(wanted, value_set=known)
    found = pc.is_valid(position).to_numpy(zero_copy_only=False)
    indices = pc.fill_null(position, 0).to_numpy(zero_copy_only=False)
    kinds = typed.field(1).to_numpy(zero_copy_only=False)
    result[found] = kinds[indices[found]]
    return result


def _structured_value(text: str, kind: int) -> common_pb2.AnyValue:
    """An array or kvlist value from the JSON text the decoder made of it."""
    if kind == ValueType.ARRAY:
        return _any_value(orjson.loads(text) if text else [])
    return _any_value(orjson.loads(text) if text else {})


def _any_value(value: Any) -> common_pb2.AnyValue:
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, str):
        return common_pb2.AnyValue(string_value=value)
    if isinstance(value, list):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[_any_value(v) for v in value]))
    if isinstance(value, dict):
        return common_pb2.AnyValue(
            kvlist_value=common_pb2.KeyValueList(
                values=[common_pb2.KeyValue(key=k, value=_any_value(v)) for k, v in value.items()]
            )
        )
    return common_pb2.AnyValue()


def _events(events: pa.ListArray, nested: _Nested) -> pa.ListArray:
    flat = pc.list_flatten(events)
    structs = _struct(
        _EVENTS.value_type,
        len(flat),
        time_unix_nano=pc.cast(flat.field("time_ns"), pa.uint64()),
        name=pc.fill_null(flat.field("name"), ""),
        attributes=_key_values(flat.field("attributes"), flat.field("attribute_types"), nested, "events"),
    )
    return pa.ListArray.from_arrays(_offsets_of(events), structs, type=_EVENTS)


def _links(links: pa.ListArray, nested: _Nested) -> pa.ListArray:
    flat = pc.list_flatten(links)
    structs = _struct(
        _LINKS.value_type,
        len(flat),
        trace_id=pc.cast(flat.field("trace_id"), pa.binary()),
        span_id=pc.cast(flat.field("span_id"), pa.binary()),
        trace_state=pc.fill_null(flat.field("trace_state"), ""),
        attributes=_key_values(flat.field("attributes"), flat.field("attribute_types"), nested, "links"),
    )
    return pa.ListArray.from_arrays(_offsets_of(links), structs, type=_LINKS)

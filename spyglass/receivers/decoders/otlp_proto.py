"""OTLP protobuf ``ExportTraceServiceRequest`` bytes -> span batch, without a Python loop per span.

ptars (Rust) turns the whole request into one nested Arrow record; from there everything is Arrow compute:
the nested lists are flattened with their parent indices, attribute lists become the text/type maps of
``spyglass.model.schema``, and validation is a handful of vectorized masks. Only rare values (arrays,
kvlists, bytes, over-long strings) fall back to Python, and only for those values.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from ptars import HandlerPool

from spyglass.model.schema import EVENT, LINK, SPAN_SCHEMA, UNKNOWN_SERVICE, SpanKind, StatusCode, ValueType
from spyglass.receivers.decoders.limits import (
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES_PER_SPAN,
    MAX_NAME_BYTES,
    MAX_NESTING_DEPTH,
    MAX_TIME_NS,
    truncate_utf8,
)
from spyglass.receivers.decoders.result import DecodeError, DecodeResult, unforeseen

_Result = TypeVar("_Result")
_REQUEST = trace_service_pb2.ExportTraceServiceRequest
_handler = HandlerPool([trace_service_pb2.DESCRIPTOR]).get_for_message(_REQUEST.DESCRIPTOR)
# Times are fixed64 on the wire: compared with an int64 scalar, Arrow would cast them to int64 and fail the
# whole request on one time past 2**63.
_MAX_TIME = pa.scalar(MAX_TIME_NS, pa.uint64())
_ZERO_TIME = pa.scalar(0, pa.uint64())
_ZERO_SPAN_ID = pa.scalar(b"\x00" * 8, pa.binary())
_MAX_KIND = max(SpanKind)
_MAX_STATUS = max(StatusCode)


def decode_otlp_proto(body: bytes) -> DecodeResult:
    """Decode a protobuf OTLP trace export; raise ``DecodeError`` when nothing in it can be accepted."""
    return decode_with_ptars(_handler, body, _spans_from_record, "trace")


def decode_with_ptars(
    handler: Any, body: bytes, convert: Callable[[pa.RecordBatch], _Result], signal: str
) -> _Result:
    """Parse a whole OTLP request with ptars, then ``convert`` its nested record; whatever goes wrong on the way
    (bad wire data, or an input nobody foresaw) is a ``DecodeError``, so the receiver answers 400, never 500."""
    try:
        record = handler.list_to_record_batch([body])
    except Exception as exc:  # ptars raises ValueError on bad wire data
        raise DecodeError(f"invalid OTLP protobuf: {exc}") from None
    try:
        return convert(record)
    except DecodeError:
        raise
    except Exception as exc:
        raise unforeseen(exc, f"OTLP {signal} data") from None


def _spans_from_record(record: pa.RecordBatch) -> DecodeResult:
    resource_spans = record.column(0)
    resources = resource_spans.flatten()  # one row per ResourceSpans
    scope_lists = resources.field("scope_spans")
    scopes = scope_lists.flatten()
    scope_resource = pc.list_parent_indices(scope_lists)
    span_lists = scopes.field("spans")
    spans = span_lists.flatten()
    n = len(spans)
    if n == 0:
        return DecodeResult(pa.RecordBatch.from_pylist([], schema=SPAN_SCHEMA))
    span_scope = pc.list_parent_indices(span_lists)
    span_resource = pc.take(scope_resource, span_scope)

    resource_attrs = resources.field("resource").field("attributes")
    resource_values, resource_types = _attribute_maps(resource_attrs)
    services = _service_names(resource_values)

    reasons = _Reasons(n)
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
        pc.and_(pc.greater(start, _ZERO_TIME), pc.less(start, _MAX_TIME)), "startTimeUnixNano out of range"
    )
    reasons.check(pc.less(end, _MAX_TIME), "endTimeUnixNano out of range")
    reasons.check(pc.greater_equal(end, start), "endTimeUnixNano before start")

    attributes, attribute_types = _attribute_maps(spans.field("attributes"), reasons=reasons)
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
        "trace_state": _empty_to_null(_truncate(spans.field("trace_state"), MAX_ATTRIBUTE_VALUE_BYTES)),
        "service": pc.take(services, span_resource),
        "name": _truncate(spans.field("name"), MAX_NAME_BYTES),
        "kind": _known_enum(spans.field("kind"), _MAX_KIND),
        "start_ns": start64,
        "duration_ns": pc.subtract(pc.cast(end, pa.int64(), safe=False), start64),
        "status_code": _known_enum(status.field("code"), _MAX_STATUS),
        "status_message": _empty_to_null(_truncate(status.field("message"), MAX_ATTRIBUTE_VALUE_BYTES)),
        "attributes": attributes,
        "attribute_types": attribute_types,
        "resource": pc.take(resource_values, span_resource),
        "resource_types": pc.take(resource_types, span_resource),
        "scope_name": _empty_to_null(_truncate(pc.take(scope.field("name"), span_scope), MAX_NAME_BYTES)),
        "scope_version": _empty_to_null(
            _truncate(pc.take(scope.field("version"), span_scope), MAX_NAME_BYTES)
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


class _Reasons:
    """Collects per-span rejections as a mask, remembering the first reason for the error message."""

    def __init__(self, n: int) -> None:
        self._valid = np.ones(n, dtype=bool)
        self._first: str | None = None
        self._first_index = n

    def check(self, ok: pa.Array | np.ndarray, reason: str) -> None:
        ok_np = ok if isinstance(ok, np.ndarray) else pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
        bad = ~ok_np
        if bad.any():
            first = int(np.argmax(bad))
            if first < self._first_index:
                self._first_index, self._first = first, f"span {first}: {reason}"
            self._valid &= ok_np

    def reject(self, index: int, reason: str) -> None:
        self._valid[index] = False
        if index < self._first_index:
            self._first_index, self._first = index, f"span {index}: {reason}"

    def valid_mask(self) -> np.ndarray:
        return self._valid

    def first(self) -> str:
        return self._first or ""


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


def _empty_to_null(strings: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(pc.binary_length(strings), 0), None, strings)


def _truncate(strings: pa.Array, max_bytes: int) -> pa.Array:
    """Cut over-long strings at a UTF-8 boundary (rare, so done in Python for just those)."""
    lengths = pc.binary_length(strings)
    longest = pc.max(lengths).as_py()
    if longest is None or longest <= max_bytes:
        return strings
    too_long = pc.fill_null(pc.greater(lengths, max_bytes), False)
    values = strings.to_pylist()
    for i in np.flatnonzero(too_long.to_numpy(zero_copy_only=False)):
        values[i] = truncate_utf8(values[i], max_bytes)
    return pa.array(values, pa.string())


def _service_names(resource_values: pa.MapArray) -> pa.Array:
    """Each resource's ``service.name`` as text (its last value when repeated, as the resource map keeps it),
    else ``UNKNOWN_SERVICE``: what the JSON decoders take too."""
    names = pc.map_lookup(resource_values, pa.scalar("service.name", pa.string()), "last")
    names = pc.if_else(pc.greater(pc.fill_null(pc.binary_length(names), 0), 0), names, UNKNOWN_SERVICE)
    return _truncate(names, MAX_NAME_BYTES)


def _attribute_maps(
    kv_lists: pa.ListArray, reasons: _Reasons | None = None, owners: pa.Array | None = None
) -> tuple[pa.MapArray, pa.MapArray]:
    """``list<KeyValue>`` -> (text map, non-string type map), one entry per list row.

    ``reasons``/``owners`` let a nested value too deep reject the span that owns the list row. Keys are cut to
    ``MAX_NAME_BYTES`` and strings (also inside arrays and kvlists) and bytes to ``MAX_ATTRIBUTE_VALUE_BYTES``,
    as the JSON decoders cut them; an array or kvlist is not cut as a whole, as its text must stay JSON.
    """
    if len(kv_lists) and pc.max(pc.list_value_length(kv_lists)).as_py() > MAX_ATTRIBUTES_PER_SPAN:
        kv_lists = pc.list_slice(kv_lists, 0, MAX_ATTRIBUTES_PER_SPAN)
    offsets = _offsets(kv_lists)
    flat = kv_lists.flatten()
    keys = _truncate(flat.field("key"), MAX_NAME_BYTES)  # before collapsing: two long keys may become one
    value = flat.field("value")
    s = _truncate(value.field("string_value"), MAX_ATTRIBUTE_VALUE_BYTES)
    b = value.field("bool_value")
    i = value.field("int_value")
    d = value.field("double_value")
    text = pc.coalesce(
        s,
        pc.cast(i, pa.string()),
        pc.if_else(b, "true", "false"),
        pc.cast(d, pa.string()),
    )
    types = pc.coalesce(
        pc.if_else(pc.is_valid(s), 0, None),
        pc.if_else(pc.is_valid(i), int(ValueType.INT), None),
        pc.if_else(pc.is_valid(b), int(ValueType.BOOL), None),
        pc.if_else(pc.is_valid(d), int(ValueType.DOUBLE), None),
    )
    text, types = _nested_values(value, text, types, kv_lists, reasons, owners)
    text = pc.fill_null(text, "")
    types_np = pc.fill_null(types, 0).to_numpy(zero_copy_only=False).astype(np.int8)
    parents_np = pc.list_parent_indices(kv_lists).to_numpy()
    keep = last_of_repeated_keys(keys, parents_np)
    if keep is not None:  # a key repeated within one list: the last value wins, as the SDKs do
        keys, text, types_np, parents_np = (
            keys.filter(keep),
            text.filter(keep),
            types_np[keep],
            parents_np[keep],
        )
        counts = np.bincount(parents_np, minlength=len(kv_lists))
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    values_map = pa.MapArray.from_arrays(offsets, keys, text)
    typed = types_np != 0
    if not typed.any():
        empty_offsets = pa.array(np.zeros(len(kv_lists) + 1, dtype=np.int32))
        types_map = pa.MapArray.from_arrays(empty_offsets, pa.array([], pa.string()), pa.array([], pa.int8()))
    else:
        parents = parents_np[typed]
        counts = np.bincount(parents, minlength=len(kv_lists))
        type_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        types_map = pa.MapArray.from_arrays(
            pa.array(type_offsets), keys.filter(pa.array(typed)), pa.array(types_np[typed], pa.int8())
        )
    return values_map, types_map


def last_of_repeated_keys(keys: pa.Array, parents: np.ndarray) -> np.ndarray | None:
    """A mask keeping only the last of each key repeated within one list (row ``parents``), or None when no
    list repeats a key (the usual case, found with one sort of ~16 ns a key).

    OTLP allows a key twice on the wire and the stores' map columns do not: collapsing here, the way the JSON
    decoders and the SDKs do, keeps one odd span from failing a whole store write.
    """
    if len(keys) < 2:
        return None
    encoded = pc.dictionary_encode(keys)
    if len(encoded.dictionary) == len(keys):
        return None  # every key distinct across the whole batch
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    pairs = parents.astype(np.int64) * len(encoded.dictionary) + codes
    ordered = np.sort(pairs)
    if not (ordered[1:] == ordered[:-1]).any():
        return None
    order = np.argsort(pairs, kind="stable")
    ordered = pairs[order]
    last = np.ones(len(pairs), dtype=bool)
    last[:-1] = ordered[1:] != ordered[:-1]
    keep = np.zeros(len(pairs), dtype=bool)
    keep[order[last]] = True
    return keep


def _offsets(lists: pa.ListArray) -> pa.Array:
    """Offsets of a list array starting at zero (flatten() drops anything before the first row)."""
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    return pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))


def _nested_values(
    value: pa.StructArray,
    text: pa.Array,
    types: pa.Array,
    kv_lists: pa.ListArray,
    reasons: _Reasons | None,
    owners: pa.Array | None,
) -> tuple[pa.Array, pa.Array]:
    """Fill in array, kvlist and bytes values, which ptars leaves as serialized sub-messages."""
    arrays = value.field("array_value")
    kvlists = value.field("kvlist_value")
    raw_bytes = value.field("bytes_value")
    rare = pc.or_(pc.or_(pc.is_valid(arrays), pc.is_valid(kvlists)), pc.is_valid(raw_bytes))
    if not len(rare) or not pc.any(rare).as_py():
        return text, types
    text_list = text.to_pylist()
    type_list = types.to_pylist()
    parents = pc.list_parent_indices(kv_lists).to_numpy()
    owner_of = owners.to_numpy() if owners is not None else None
    for index in np.flatnonzero(rare.to_numpy(zero_copy_only=False)):
        try:
            if raw_bytes[index].is_valid:
                text_list[index] = _base64(raw_bytes[index].as_py())
                type_list[index] = int(ValueType.BYTES)
                continue
            is_array = arrays[index].is_valid
            items = (arrays if is_array else kvlists)[index]["values"].as_py()
            py = _any_values(items) if is_array else _key_values(items)
            text_list[index] = orjson.dumps(py).decode()
            type_list[index] = int(ValueType.ARRAY if is_array else ValueType.KVLIST)
        except (_TooDeep, ProtobufDecodeError, RecursionError, ValueError) as exc:
            text_list[index], type_list[index] = "", 0
            if reasons is not None:
                row = int(parents[index])
                span = int(owner_of[row]) if owner_of is not None else row
                reasons.reject(span, f"attribute value {exc or 'nested too deeply'}")
    return pa.array(text_list, pa.string()), pa.array(type_list, pa.int8())


def _base64(raw: bytes) -> str:
    """A bytes value as OTLP JSON writes it, cut to the limit first (as the JSON decoders cut it)."""
    return base64.b64encode(raw[:MAX_ATTRIBUTE_VALUE_BYTES]).decode("ascii")


class _TooDeep(ValueError):
    """An array or kvlist value nested deeper than ``MAX_NESTING_DEPTH``."""


def _any_values(serialized: list[bytes], depth: int = 1) -> list[Any]:
    return [_any_value(common_pb2.AnyValue.FromString(item), depth) for item in serialized]


def _key_values(serialized: list[bytes], depth: int = 1) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in serialized:
        kv = common_pb2.KeyValue.FromString(item)
        out[kv.key] = _any_value(kv.value, depth)
    return out


def _any_value(value: common_pb2.AnyValue, depth: int) -> Any:
    if depth > MAX_NESTING_DEPTH:
        raise _TooDeep(f"nested deeper than {MAX_NESTING_DEPTH} levels")
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_any_value(v, depth + 1) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _any_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if which == "string_value":
        return truncate_utf8(value.string_value, MAX_ATTRIBUTE_VALUE_BYTES)
    if which == "bytes_value":
        return _base64(value.bytes_value)
    if which == "double_value":
        d = value.double_value
        return d if d == d and abs(d) != float("inf") else str(d)
    if which is None:
        return None
    return getattr(value, which)


def _events(event_lists: pa.ListArray, reasons: _Reasons) -> pa.Array:
    events = event_lists.flatten()
    owners = pc.list_parent_indices(event_lists)
    times = events.field("time_unix_nano")
    latest = pc.max(times).as_py()
    if latest is not None and latest >= MAX_TIME_NS:
        _reject_owners(reasons, owners, pc.less(times, _MAX_TIME), "event timeUnixNano out of range")
    values, types = _attribute_maps(events.field("attributes"), reasons=reasons, owners=owners)
    structs = pa.StructArray.from_arrays(
        [
            pc.cast(times, pa.int64(), safe=False),
            _truncate(events.field("name"), MAX_NAME_BYTES),
            values,
            types,
        ],
        fields=list(EVENT),
    )
    return pa.ListArray.from_arrays(_offsets(event_lists), structs, type=pa.list_(EVENT))


def _links(link_lists: pa.ListArray, reasons: _Reasons) -> pa.Array:
    links = link_lists.flatten()
    owners = pc.list_parent_indices(link_lists)
    if len(links):
        ok = pc.and_(_valid_id(links.field("trace_id"), 16), _valid_id(links.field("span_id"), 8))
        _reject_owners(reasons, owners, ok, "link ids must be 16 and 8 bytes and not all zero")
    values, types = _attribute_maps(links.field("attributes"), reasons=reasons, owners=owners)
    structs = pa.StructArray.from_arrays(
        [
            links.field("trace_id"),
            links.field("span_id"),
            _empty_to_null(_truncate(links.field("trace_state"), MAX_ATTRIBUTE_VALUE_BYTES)),
            values,
            types,
        ],
        names=[f.name for f in LINK],
    )
    return pa.ListArray.from_arrays(_offsets(link_lists), structs)


def _reject_owners(reasons: _Reasons, owners: pa.Array, ok: pa.Array, reason: str) -> None:
    """Reject the span owning each event or link that is not ``ok`` (rare: a loop over just those)."""
    bad = ~pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
    if bad.any():
        owner_of = owners.to_numpy()
        for index in np.flatnonzero(bad):
            reasons.reject(int(owner_of[index]), reason)

"""What the columnar protobuf decoders of spans (``otlp_proto``) and of logs (``otlp_logs``) share: parsing a
request with ptars and flattening its three levels, collecting per-row rejections as a mask, and turning
``KeyValue`` lists, strings and ``AnyValue`` messages into the columns of ``spyglass.model.schema``.

ptars (Rust) turns the whole request into one nested Arrow record; from there everything is Arrow compute. Only
rare values (arrays, kvlists, bytes, over-long strings) fall back to Python, and only for those values.
"""

from __future__ import annotations

import base64
from typing import Any, NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.common.v1 import common_pb2
from ptars import HandlerPool

from spyglass.model.schema import UNKNOWN_SERVICE, ValueType
from spyglass.receivers.decoders.arrow_views import int_values, lengths, offsets, valid_mask, with_validity
from spyglass.receivers.decoders.limits import (
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES_PER_SPAN,
    MAX_NAME_BYTES,
    MAX_NESTING_DEPTH,
    MAX_TIME_NS,
    truncate_utf8,
)
from spyglass.receivers.decoders.result import DecodeError

__all__ = [
    "MAX_TIME",
    "ZERO_TIME",
    "NestedTooDeep",
    "RequestParser",
    "RequestRows",
    "RowRejections",
    "attribute_maps",
    "empty_maps",
    "empty_to_null",
    "json_ready_array",
    "json_ready_value",
    "list_offsets",
    "service_names",
    "truncate_strings",
]

# Times are fixed64 on the wire: compared with an int64 scalar, Arrow would cast them to int64 and fail the
# whole request on one time past 2**63.
MAX_TIME = pa.scalar(MAX_TIME_NS, pa.uint64())
ZERO_TIME = pa.scalar(0, pa.uint64())


class RequestRows(NamedTuple):
    """The three levels of an OTLP request, each flattened to one row per item, and where each item sits."""

    resources: pa.StructArray  # one row per ResourceSpans (or ResourceLogs)
    scopes: pa.StructArray  # one row per ScopeSpans (or ScopeLogs)
    items: pa.StructArray  # one row per span (or log record)
    item_scope: pa.Array  # the row in ``scopes`` of each item
    item_resource: pa.Array  # the row in ``resources`` of each item


class RequestParser:
    """Parses one kind of OTLP export request with ptars and flattens its three levels to ``RequestRows``."""

    def __init__(self, request: Any, scopes_field: str, items_field: str) -> None:
        """``request`` is the generated message class; ``scopes_field`` and ``items_field`` name its levels
        (``scope_spans`` and ``spans``, or ``scope_logs`` and ``log_records``)."""
        self._handler = HandlerPool([request.DESCRIPTOR.file]).get_for_message(request.DESCRIPTOR)
        self._scopes_field = scopes_field
        self._items_field = items_field

    def __call__(self, body: bytes) -> RequestRows:
        """The request in ``body``, flattened; bad wire data is a ``DecodeError``."""
        return self.many([body])[0]

    def many(self, bodies: list[bytes]) -> tuple[RequestRows, np.ndarray]:
        """Several requests flattened together (one ptars call: most of its cost is per call, 0.7 ms, not per
        span), and the request each item comes from, ascending; bad wire data in any is a ``DecodeError``."""
        try:
            record = self._handler.list_to_record_batch(bodies)
        except Exception as exc:  # ptars raises ValueError on bad wire data
            raise DecodeError(f"invalid OTLP protobuf: {exc}") from None
        resource_lists = record.column(0)
        resources = resource_lists.flatten()
        scope_lists = resources.field(self._scopes_field)
        scopes = scope_lists.flatten()
        item_lists = scopes.field(self._items_field)
        item_scope = pc.list_parent_indices(item_lists)
        item_resource = pc.take(pc.list_parent_indices(scope_lists), item_scope)
        rows = RequestRows(resources, scopes, item_lists.flatten(), item_scope, item_resource)
        if len(bodies) == 1:
            return rows, np.zeros(len(rows.items), dtype=np.int64)
        resource_request = pc.list_parent_indices(resource_lists).to_numpy()
        return rows, resource_request[item_resource.to_numpy()]


class RowRejections:
    """Collects per-row rejections (of spans, or log records) as a mask, with each rejected row's first reason,
    for the error message: the first rejected row's, counted from the start of its export (several exports
    decoded together are told apart by ``first``'s bounds). Rows marked ``exempt`` (log records without trace
    context, dropped anyway) are never rejected."""

    def __init__(self, n: int, row: str, exempt: np.ndarray | None = None) -> None:
        self._valid = np.ones(n, dtype=bool)
        self._reason = np.full(n, -1, dtype=np.int32)  # index into ``_reasons``; -1 while the row is valid
        self._reasons: dict[str, int] = {}
        self._row = row
        self._exempt = exempt
        self._noted: np.ndarray | None = None  # index into ``_notes`` per row, -1 where nothing was noted
        self._notes: dict[str, int] = {}

    def _reason_id(self, reason: str) -> int:
        return self._reasons.setdefault(reason, len(self._reasons))

    def check(self, ok: pa.Array | np.ndarray, reason: str) -> None:
        """Reject every row where ``ok`` is false (or null) for ``reason``."""
        ok_np = ok if isinstance(ok, np.ndarray) else pc.fill_null(ok, False).to_numpy(zero_copy_only=False)
        if self._exempt is not None:
            ok_np = ok_np | self._exempt
        bad = ~ok_np
        if bad.any():
            fresh = bad & (self._reason < 0)
            self._reason[fresh] = self._reason_id(reason)
            self._valid &= ok_np

    def note(self, ok: np.ndarray, reason: str) -> None:
        """Accept every row where ``ok`` is false, but tell the sender why (an OTLP partial success with nothing
        rejected is a warning): a value spyglass repaired."""
        if not ok.all():
            if self._noted is None:
                self._noted = np.full(len(self._valid), -1, dtype=np.int32)
            fresh = ~ok & (self._noted < 0)
            self._noted[fresh] = self._note_id(reason)

    def _note_id(self, reason: str) -> int:
        return self._notes.setdefault(reason, len(self._notes))

    def first_noted(self, start: int = 0, end: int | None = None) -> str:
        """The note on the first accepted row of ``[start, end)`` that has one, named by its place from
        ``start``; empty if none has."""
        if self._noted is None:
            return ""
        noted = np.flatnonzero((self._noted[start:end] >= 0) & self._valid[start:end])
        if not noted.size:
            return ""
        at = int(noted[0])
        notes = list(self._notes)
        return f"{self._row} {at}: {notes[int(self._noted[start + at])]}"

    def reject(self, index: int, reason: str) -> None:
        """Reject row ``index`` for ``reason``."""
        if self._exempt is not None and self._exempt[index]:
            return
        self._valid[index] = False
        if self._reason[index] < 0:
            self._reason[index] = self._reason_id(reason)

    def valid_mask(self) -> np.ndarray:
        return self._valid

    def first(self, start: int = 0, end: int | None = None) -> str:
        """Why the first rejected row of ``[start, end)`` was rejected, naming it by its place from ``start``."""
        rejected = np.flatnonzero(~self._valid[start:end])
        if not rejected.size:
            return ""
        at = int(rejected[0])
        reasons = list(self._reasons)
        return f"{self._row} {at}: {reasons[int(self._reason[start + at])]}"


def empty_to_null(strings: pa.Array) -> pa.Array:
    """Empty strings as null, as the JSON decoders keep an empty optional string."""
    return with_validity(strings, lengths(strings) > 0)


def truncate_strings(strings: pa.Array, max_bytes: int) -> pa.Array:
    """Cut over-long strings at a UTF-8 boundary (rare, so done in Python for just those)."""
    if not len(strings):
        return strings
    byte_lengths = lengths(strings)
    if int(byte_lengths.max()) <= max_bytes:
        return strings
    values = strings.to_pylist()
    for i in np.flatnonzero(byte_lengths > max_bytes):
        if values[i] is not None:
            values[i] = truncate_utf8(values[i], max_bytes)
    return pa.array(values, pa.string())


def service_names(resource_values: pa.MapArray) -> pa.Array:
    """Each resource's ``service.name`` as text (its last value when repeated, as the resource map keeps it),
    else ``UNKNOWN_SERVICE``: what the JSON decoders take too."""
    names = pc.map_lookup(resource_values, _SERVICE_NAME, "last")
    # One per resource, which are few: a Python pass costs less than the four compute calls of a vector one.
    named = [name or UNKNOWN_SERVICE for name in names.to_pylist()]
    return truncate_strings(pa.array(named, pa.string()), MAX_NAME_BYTES)


_SERVICE_NAME = pa.scalar("service.name", pa.string())


def empty_maps(rows: int) -> tuple[pa.MapArray, pa.MapArray]:
    """``rows`` empty text maps and type maps (the usual attributes of events, links and scopes)."""
    zero = pa.array(np.zeros(rows + 1, dtype=np.int32))
    return (
        pa.MapArray.from_arrays(zero, _NO_STRINGS, _NO_STRINGS),
        pa.MapArray.from_arrays(zero, _NO_STRINGS, _NO_TYPES),
    )


_NO_STRINGS = pa.array([], pa.string())
_NO_TYPES = pa.array([], pa.int8())


def attribute_maps(
    kv_lists: pa.ListArray, reasons: RowRejections | None = None, owners: pa.Array | None = None
) -> tuple[pa.MapArray, pa.MapArray]:
    """``list<KeyValue>`` -> (text map, non-string type map), one entry per list row.

    ``reasons``/``owners`` let a nested value too deep reject the span that owns the list row. Keys are cut to
    ``MAX_NAME_BYTES`` and strings (also inside arrays and kvlists) and bytes to ``MAX_ATTRIBUTE_VALUE_BYTES``,
    as the JSON decoders cut them; an array or kvlist is not cut as a whole, as its text must stay JSON.
    Each value type present costs one Arrow call; a type no value has costs nothing (its null count says so).
    """
    rows = len(kv_lists)
    counts = lengths(kv_lists)
    if not rows or not counts.any():
        return empty_maps(rows)
    if int(counts.max()) > MAX_ATTRIBUTES_PER_SPAN:
        kv_lists = pc.list_slice(kv_lists, 0, MAX_ATTRIBUTES_PER_SPAN)
        counts = np.minimum(counts, MAX_ATTRIBUTES_PER_SPAN)
    flat = kv_lists.flatten()
    size = len(flat)
    keys = truncate_strings(
        flat.field("key"), MAX_NAME_BYTES
    )  # before collapsing: two long keys may become one
    value = flat.field("value")
    s = value.field("string_value")
    i = value.field("int_value")
    b = value.field("bool_value")
    d = value.field("double_value")
    types_np = np.zeros(size, dtype=np.int8)
    parts: list[pa.Array] = []
    # Assigned from the lowest priority up, so that a value with two fields set reads as the coalesce below.
    for part, value_type in (
        (d, ValueType.DOUBLE),
        (b, ValueType.BOOL),
        (i, ValueType.INT),
        (s, ValueType.STRING),
    ):
        if part.null_count < size:
            types_np[valid_mask(part)] = value_type
            parts.append(_value_text(part, value_type))
    parts.reverse()
    text = parts[0] if len(parts) == 1 else pc.coalesce(*parts) if parts else pa.nulls(size, pa.string())
    text, types_np = _nested_values(value, text, types_np, counts, reasons, owners)
    if text.null_count:
        text = pc.fill_null(text, "")
    parents_np = np.repeat(np.arange(rows, dtype=np.int64), counts)
    map_offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(counts, out=map_offsets[1:])
    keep = _last_of_repeated_keys(keys, parents_np, counts)
    if keep is not None:  # a key repeated within one list: the last value wins, as the SDKs do
        kept = pa.array(keep)
        keys, text, types_np, parents_np = (
            keys.filter(kept),
            text.filter(kept),
            types_np[keep],
            parents_np[keep],
        )
        np.cumsum(np.bincount(parents_np, minlength=rows), out=map_offsets[1:])
    values_map = pa.MapArray.from_arrays(pa.array(map_offsets), keys, text)
    typed = types_np != 0
    if not typed.any():
        return values_map, empty_maps(rows)[1]
    type_offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(np.bincount(parents_np[typed], minlength=rows), out=type_offsets[1:])
    types_map = pa.MapArray.from_arrays(
        pa.array(type_offsets), keys.filter(pa.array(typed)), pa.array(types_np[typed], pa.int8())
    )
    return values_map, types_map


def _value_text(values: pa.Array, value_type: ValueType) -> pa.Array:
    """One field of ``AnyValue`` as the text the attribute maps keep."""
    if value_type == ValueType.STRING:
        return truncate_strings(values, MAX_ATTRIBUTE_VALUE_BYTES)
    if value_type == ValueType.BOOL:
        return pc.if_else(values, "true", "false")
    return pc.cast(values, pa.string())


def _last_of_repeated_keys(keys: pa.Array, parents: np.ndarray, counts: np.ndarray) -> np.ndarray | None:
    """A mask keeping only the last of each key repeated within one list (row ``parents``), or None when no
    list repeats a key (the usual case, found with one sort of a cheap fingerprint of each key).

    OTLP allows a key twice on the wire and the stores' map columns do not: collapsing here, the way the JSON
    decoders and the SDKs do, keeps one odd span from failing a whole store write.
    """
    if len(keys) < 2 or int(counts.max()) < 2:
        return None
    if not _may_repeat(keys, parents):
        return None
    encoded = pc.dictionary_encode(keys)
    width = len(encoded.dictionary)
    if width == len(keys):
        return None  # every key distinct across the whole batch
    codes = int_values(encoded.indices).astype(np.int64)
    pairs = parents * width + codes
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


#: Up to this many keys, ``_may_repeat`` compares the keys themselves.
_FEW_KEYS = 64


def _may_repeat(keys: pa.Array, parents: np.ndarray) -> bool:
    """False when no list has two keys of the same length, first byte and last byte (so none repeats a key);
    read from the keys' buffers, without hashing a string."""
    if len(keys) <= _FEW_KEYS:  # a few resources' or scopes' keys: a Python set answers exactly, and sooner
        listed = list(zip(parents.tolist(), keys.to_pylist(), strict=True))
        return len(set(listed)) < len(listed)
    bounds = offsets(keys).astype(np.int64)
    data = keys.buffers()[2]
    if data is None or data.size == 0:
        return True
    raw = np.frombuffer(data, np.uint8)
    length = np.diff(bounds)
    nonempty = length > 0
    first = np.where(nonempty, raw[np.minimum(bounds[:-1], raw.size - 1)], 0).astype(np.int64)
    last = np.where(nonempty, raw[np.maximum(bounds[1:] - 1, 0)], 0).astype(np.int64)
    fingerprint = (np.minimum(length, 1 << 20) << 16) | (first << 8) | last
    pairs = np.sort(parents.astype(np.int64) << 36 | fingerprint)
    return bool((pairs[1:] == pairs[:-1]).any())


def list_offsets(lists: pa.ListArray) -> pa.Array:
    """Offsets of a list array starting at zero (flatten() drops anything before the first row)."""
    raw = offsets(lists)
    return pa.array((raw - raw[0]).astype(np.int32))


def _nested_values(
    value: pa.StructArray,
    text: pa.Array,
    types: np.ndarray,
    counts: np.ndarray,
    reasons: RowRejections | None,
    owners: pa.Array | None,
) -> tuple[pa.Array, np.ndarray]:
    """Fill in array, kvlist and bytes values, which ptars leaves as serialized sub-messages."""
    arrays = value.field("array_value")
    kvlists = value.field("kvlist_value")
    raw_bytes = value.field("bytes_value")
    size = len(value)
    if arrays.null_count == size and kvlists.null_count == size and raw_bytes.null_count == size:
        return text, types
    rare = valid_mask(arrays) | valid_mask(kvlists) | valid_mask(raw_bytes)
    text_list = text.to_pylist()
    types = types.copy()
    parents = np.repeat(np.arange(len(counts)), counts)
    owner_of = owners.to_numpy() if owners is not None else None
    for index in np.flatnonzero(rare):
        try:
            if raw_bytes[index].is_valid:
                text_list[index] = _base64(raw_bytes[index].as_py())
                types[index] = ValueType.BYTES
                continue
            is_array = arrays[index].is_valid
            items = (arrays if is_array else kvlists)[index]["values"].as_py()
            py = json_ready_array(items) if is_array else _json_ready_kvlist(items)
            text_list[index] = orjson.dumps(py).decode()
            types[index] = ValueType.ARRAY if is_array else ValueType.KVLIST
        except (NestedTooDeep, ProtobufDecodeError, RecursionError, ValueError) as exc:
            text_list[index], types[index] = "", 0
            if reasons is not None:
                row = int(parents[index])
                span = int(owner_of[row]) if owner_of is not None else row
                reasons.reject(span, f"attribute value {exc or 'nested too deeply'}")
    return pa.array(text_list, pa.string()), types


def _base64(raw: bytes) -> str:
    """A bytes value as OTLP JSON writes it, cut to the limit first (as the JSON decoders cut it)."""
    return base64.b64encode(raw[:MAX_ATTRIBUTE_VALUE_BYTES]).decode("ascii")


class NestedTooDeep(ValueError):
    """An array or kvlist value nested deeper than ``MAX_NESTING_DEPTH``."""


def json_ready_array(serialized: list[bytes], depth: int = 1) -> list[Any]:
    """Serialized ``AnyValue`` messages (an array's values) -> what ``json_ready_value`` makes of each."""
    return [json_ready_value(common_pb2.AnyValue.FromString(item), depth) for item in serialized]


def _json_ready_kvlist(serialized: list[bytes], depth: int = 1) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in serialized:
        kv = common_pb2.KeyValue.FromString(item)
        out[kv.key] = json_ready_value(kv.value, depth)
    return out


def json_ready_value(value: common_pb2.AnyValue, depth: int) -> Any:
    """An ``AnyValue`` message -> the Python value its JSON text holds: strings cut to the limit, bytes as
    base64, non-finite doubles as text; ``NestedTooDeep`` past ``MAX_NESTING_DEPTH`` levels."""
    if depth > MAX_NESTING_DEPTH:
        raise NestedTooDeep(f"nested deeper than {MAX_NESTING_DEPTH} levels")
    which = value.WhichOneof("value")
    if which == "array_value":
        return [json_ready_value(v, depth + 1) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: json_ready_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
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

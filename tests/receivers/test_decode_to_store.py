"""Decode only to what the store can hold: hostile but wire-legal exports go decode -> every store -> read back
-> the API's rendering, and nothing on the way may fail.

A decoder may refuse a request (``DecodeError``, a 400) or reject single spans and log records (an OTLP partial
success); whatever it accepts must be written by every store backend, come back span for span, render exactly
as the decoded batch renders, and hold what OTLP and ``decoders.limits`` say it holds: of a key repeated in one
attribute list the last value, names and values cut to the limits, enums it knows.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import math
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from spyglass.api.jaeger import jaeger_trace
from spyglass.api.span_json import span_rows, span_to_json
from spyglass.api.v1 import log_to_json
from spyglass.model.log_schema import LOG_SCHEMA, MAX_SEVERITY_NUMBER, severity_name
from spyglass.model.schema import KIND_NAMES, SPAN_SCHEMA, STATUS_NAMES, UNKNOWN_SERVICE
from spyglass.model.shared_spans import server_half_id
from spyglass.receivers.decoders.limits import (
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_NAME_BYTES,
    MAX_NESTING_DEPTH,
    MAX_TIME_NS,
    parse_json,
    truncate_utf8,
)
from spyglass.receivers.decoders.otlp_json import decode_otlp_json
from spyglass.receivers.decoders.otlp_logs import decode_otlp_logs_json, decode_otlp_logs_proto
from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto
from spyglass.receivers.decoders.result import DecodeError, DecodeResult
from spyglass.receivers.decoders.zipkin_json import decode_zipkin_json
from spyglass.store.protocol import Store
from tests.store.conftest import BACKENDS, discard_store, open_store, stored
from tests.support.decode_answers import check_message

# Each example also writes to every backend and reads back (~5-150 ms): fewer examples than the decoder fuzzers.
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
NOW_NS = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Store]]:
    """One store of every backend for the whole module; each example writes under trace ids of its own."""
    opened: dict[str, Store] = {}
    try:
        for backend in BACKENDS:
            opened[backend] = open_store(backend, Path(tmp_path_factory.mktemp(backend)))
        yield opened
    finally:
        for backend, store in opened.items():
            discard_store(backend, store)


# -- through the stores and the API's rendering -----------------------------------------------------------


def _service_text(row: dict[str, Any]) -> str | None:
    """The stored text of the resource's ``service.name``, which the ``service`` column must repeat."""
    return dict(row["resource"] or []).get("service.name")


def rendered_spans(table: pa.Table) -> dict[str, dict[str, Any]]:
    """Spans as the API renders them (``span_to_json``), by span id, with their raw kind and status codes.

    Serializing them as the API does, and rendering each trace in Jaeger's shape, must not fail either.
    """
    rows = span_rows(table)
    spans = [span_to_json(row) for row in rows]
    orjson.dumps({"spans": spans}, option=orjson.OPT_SERIALIZE_NUMPY)
    for trace_id in {span["trace_id"] for span in spans}:
        orjson.dumps(jaeger_trace([span for span in spans if span["trace_id"] == trace_id]))
    return {
        span["span_id"]: span
        | {"kind_code": row["kind"], "status_code": row["status_code"], "service_text": _service_text(row)}
        for span, row in zip(spans, rows, strict=True)
    }


def rendered_logs(table: pa.Table) -> dict[str, list[dict[str, Any]]]:
    """Log records as the API renders them (``log_to_json``), by trace id."""
    rows = table.to_pylist()
    logs = [log_to_json(row) for row in rows]
    orjson.dumps({"logs": logs}, option=orjson.OPT_SERIALIZE_NUMPY)
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for log, row in zip(logs, rows, strict=True):
        by_trace.setdefault(log["trace_id"], []).append(log | {"service_text": _service_text(row)})
    return by_trace


def store_spans(stores: dict[str, Store], result: DecodeResult) -> dict[str, dict[str, Any]]:
    """Write the decoded spans to every store and read each trace back: the same spans must come back and
    render exactly as the decoded batch does. Returns the rendered spans by span id."""
    batch = result.batch
    assert batch.schema == SPAN_SCHEMA
    batch.validate(full=True)
    check_message(result)
    decoded = rendered_spans(pa.Table.from_batches([batch]))
    assert len(decoded) == batch.num_rows, "span ids are unique in every example"
    for backend, store in stores.items():
        store.write(stored(batch))
        for trace_id in set(batch.column("trace_id").to_pylist()):
            read = store.trace(trace_id)
            wanted = sum(span["trace_id"] == trace_id.hex() for span in decoded.values())
            assert read.num_rows == wanted, f"{backend}: trace {trace_id.hex()}"
            for span_id, span in rendered_spans(read).items():
                assert_same(decoded[span_id], span, f"{backend} read back span {span_id}")
    return decoded


def store_logs(stores: dict[str, Store], result: DecodeResult) -> dict[str, dict[str, Any]]:
    """Write the decoded log records to every store and read them back by trace: the same records must come
    back and render as the decoded batch does. Every example gives each record a trace of its own; returns
    the rendered records by trace id."""
    batch = result.batch
    assert batch.schema == LOG_SCHEMA
    batch.validate(full=True)
    check_message(result)
    table = pa.Table.from_batches([batch])
    decoded = rendered_logs(table)
    assert all(len(records) == 1 for records in decoded.values())
    trace_ids = list(set(batch.column("trace_id").to_pylist()))
    for backend, store in stores.items():
        store.write_logs(table)
        assert_same(decoded, rendered_logs(store.logs_for_traces(trace_ids)), f"{backend} read back logs")
    return {trace_id: records[0] for trace_id, records in decoded.items()}


def assert_service(rendered: dict[str, Any]) -> None:
    """A span or log record carries the service its resource names: the (last) ``service.name``, as text."""
    text = rendered["service_text"]
    assert rendered["service"] == (truncate_utf8(text, MAX_NAME_BYTES) if text else UNKNOWN_SERVICE)


def difference(expected: Any, actual: Any, path: str = "") -> str | None:
    """Where ``actual`` differs from ``expected``, briefly, or None. A double that is not finite renders as
    its text (JSON has no NaN), so an expected non-finite float matches a string spelling it."""
    if isinstance(expected, float):
        if isinstance(actual, str):
            try:
                actual = float(actual)
            except ValueError:
                pass
        if isinstance(actual, float) and (
            actual == expected or (math.isnan(actual) and math.isnan(expected))
        ):
            return None
    elif isinstance(expected, dict) and isinstance(actual, dict):
        if expected.keys() != actual.keys():
            return f"{path}: keys {_short(sorted(expected))} != {_short(sorted(actual))}"
        found = (difference(expected[key], actual[key], f"{path}[{_short(key)}]") for key in expected)
        return next((item for item in found if item), None)
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return f"{path}: {len(expected)} items != {len(actual)}"
        found = (
            difference(left, right, f"{path}[{i}]")
            for i, (left, right) in enumerate(zip(expected, actual, strict=True))
        )
        return next((item for item in found if item), None)
    elif type(expected) is type(actual) and expected == actual:
        return None
    return f"{path}: expected {_short(expected)}, got {_short(actual)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else f"{text[:100]}... ({len(text)} chars)"


def assert_same(expected: Any, actual: Any, what: str) -> None:
    found = difference(expected, actual)
    assert found is None, f"{what}{found}"


def salted(salt: bytes, *parts: object) -> bytes:
    """A valid 16-byte id of this example only, so that examples never share a trace in the stores."""
    return hashlib.blake2b(salt + repr(parts).encode(), digest_size=16).digest()


# -- hostile values -----------------------------------------------------------------------------------------


def pick(values: Sequence[Any]) -> st.SearchStrategy[Any]:
    """``sampled_from`` with a short repr (some values are 64 KiB long); shrinks towards the first value."""
    return st.integers(0, len(values) - 1).map(lambda index: values[index])


def mostly(
    usual: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any], one_in: int = 8
) -> st.SearchStrategy[Any]:
    """``hostile`` once in ``one_in`` draws, else ``usual``: a span with one hostile field is common, one with
    all of them is not (a span with a bad id or time is rejected whatever else it holds)."""
    return st.integers(1, one_in).flatmap(lambda roll: hostile if roll == 1 else usual)


LONG_VALUE = "é" * (MAX_ATTRIBUTE_VALUE_BYTES // 2 + 7)  # over 64 KiB of UTF-8; the limit falls inside an "é"
HOSTILE_TEXTS = [
    "",
    "\x00",
    "nul\x00inside",
    "\U0001f9f5 \U0001d518\U0001d52b",  # astral plane
    "\u202eevil\u202c \u05e9\u05dc\u05d5\u05dd",  # RTL override, Hebrew
    "e\u0301\u0302\u0303",  # combining marks
    "\ufeff\u200b\ufffe\U0010ffff",
    "名" * (MAX_NAME_BYTES // 3 + 2),  # past the name limit
    LONG_VALUE,
]
texts = st.one_of(pick(HOSTILE_TEXTS), st.text(max_size=8))
LONG_KEY = "k" * MAX_NAME_BYTES
# Few keys, so lists repeat them; two long keys that are one key once cut to the name limit.
KEYS = ["a", "b", "", "\x00", "service.name", "\u202ekey", LONG_KEY + "1", LONG_KEY + "2", "é" * 2049]
keys = st.one_of(pick(KEYS), st.text(max_size=3))
int64s = st.one_of(pick([0, -1, 2**63 - 1, -(2**63)]), st.integers(-(2**63), 2**63 - 1))
doubles = st.one_of(
    pick([math.nan, -math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]), st.floats()
)
raw_bytes = st.one_of(st.binary(max_size=12), pick([b"\xfb\xff" * (MAX_ATTRIBUTE_VALUE_BYTES // 2 + 3)]))


def _flatten(groups: list[list[tuple[str, Any]]]) -> list[tuple[str, Any]]:
    return [pair for group in groups for pair in group]


def attribute_pairs(
    values: st.SearchStrategy[Any], max_groups: int = 4
) -> st.SearchStrategy[list[tuple[str, Any]]]:
    """``(key, value)`` pairs, some keys repeated (often with values of other types), in any order."""
    single = st.tuples(keys, values).map(lambda pair: [pair])
    repeated = st.tuples(keys, st.lists(values, min_size=2, max_size=3)).map(
        lambda pair: [(pair[0], value) for value in pair[1]]
    )
    return st.lists(st.one_of(single, repeated), max_size=max_groups).map(_flatten).flatmap(_shuffled)


def _shuffled(items: list[Any]) -> st.SearchStrategy[list[Any]]:
    # Permuting indices, not the items: a strategy's repr holds its arguments, and items can be 64 KiB long.
    return st.permutations(range(len(items))).map(lambda order: [items[i] for i in order])


EXTREME_TIMES = [0, 1, MAX_TIME_NS - 1, MAX_TIME_NS, 2**63 - 1, 2**63, 2**64 - 1]
times = mostly(st.integers(NOW_NS, NOW_NS + 10**9), pick(EXTREME_TIMES))


@st.composite
def start_and_end(draw: st.DrawFn) -> tuple[int, int]:
    """Mostly a plausible span; now and then an extreme time or an end before the start."""
    start = draw(times)
    end = draw(mostly(st.integers(0, 10**9).map(lambda delta: min(start + delta, 2**64 - 1)), times))
    return start, end


# -- protobuf: hostile requests ---------------------------------------------------------------------------------


def nested_kvlists(depth: int) -> AnyValue:
    """A value ``depth`` kvlists deep whose key repeats at every level (the deep value is then replaced)."""
    value = AnyValue(string_value="leaf")
    for _ in range(depth):
        items = [KeyValue(key="k", value=value), KeyValue(key="k", value=AnyValue(int_value=1))]
        value = AnyValue(kvlist_value=KeyValueList(values=items))
    return value


proto_leaves = mostly(
    st.one_of(
        texts.map(lambda text: AnyValue(string_value=text)),
        st.booleans().map(lambda flag: AnyValue(bool_value=flag)),
        int64s.map(lambda number: AnyValue(int_value=number)),
        doubles.map(lambda number: AnyValue(double_value=number)),
        raw_bytes.map(lambda raw: AnyValue(bytes_value=raw)),
        st.just(AnyValue()),  # no value set: legal
    ),
    pick([nested_kvlists(MAX_NESTING_DEPTH), nested_kvlists(MAX_NESTING_DEPTH + 1)]),
    one_in=50,
)
proto_values = st.recursive(
    proto_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda items: AnyValue(array_value=ArrayValue(values=items))),
        attribute_pairs(children, 3).map(
            lambda pairs: AnyValue(
                kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in pairs])
            )
        ),
    ),
    max_leaves=4,
)


def proto_attributes(max_groups: int = 4) -> st.SearchStrategy[list[KeyValue]]:
    return attribute_pairs(proto_values, max_groups).map(
        lambda pairs: [KeyValue(key=k, value=v) for k, v in pairs]
    )


def proto_ids(size: int) -> st.SearchStrategy[bytes]:
    """Mostly a valid id (each example then gets ids of its own), else empty, all zero, or of another length."""
    return mostly(
        st.just(b"\x01" * size), st.one_of(pick([b"", bytes(size)]), st.binary(max_size=2 * size + 1))
    )


ENUM_OUTLIERS = [-1, 6, 258, 2**31 - 1, -(2**31)]  # open enums: any int32 is legal on the wire
TRACE_SLOTS = [bytes([slot + 1]) * 16 for slot in range(3)]  # spans share these few traces


@st.composite
def proto_spans(draw: st.DrawFn) -> Span:
    start, end = draw(start_and_end())
    events = [
        Span.Event(time_unix_nano=draw(times), name=draw(texts), attributes=draw(proto_attributes(2)))
        for _ in range(draw(st.integers(0, 2)))
    ]
    links = [
        Span.Link(
            trace_id=draw(proto_ids(16)),
            span_id=draw(proto_ids(8)),
            trace_state=draw(texts),
            attributes=draw(proto_attributes(2)),
        )
        for _ in range(draw(st.integers(0, 2)))
    ]
    return Span(
        trace_id=draw(mostly(mostly(st.just(TRACE_SLOTS[0]), pick(TRACE_SLOTS), 3), proto_ids(16))),
        span_id=draw(proto_ids(8)),
        parent_span_id=draw(st.one_of(st.just(b""), st.binary(min_size=8, max_size=8), proto_ids(8))),
        trace_state=draw(texts),
        name=draw(texts),
        kind=draw(mostly(st.integers(0, 5), pick(ENUM_OUTLIERS))),
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=draw(proto_attributes()),
        events=events,
        links=links,
        status=Status(code=draw(mostly(st.integers(0, 2), pick(ENUM_OUTLIERS))), message=draw(texts)),
    )


@st.composite
def proto_resources(draw: st.DrawFn) -> Resource:
    """A resource that may lack ``service.name``, or carry it several times with values of several types."""
    attributes = draw(proto_attributes(3))
    names = st.one_of(texts.map(lambda text: AnyValue(string_value=text)), proto_leaves)
    for value in draw(st.lists(names, max_size=3)):
        attributes.insert(draw(st.integers(0, len(attributes))), KeyValue(key="service.name", value=value))
    return Resource(attributes=attributes)


@st.composite
def proto_scopes(draw: st.DrawFn) -> InstrumentationScope:
    return InstrumentationScope(name=draw(texts), version=draw(texts), attributes=draw(proto_attributes(2)))


@st.composite
def trace_requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=draw(proto_resources()),
                scope_spans=[
                    ScopeSpans(scope=draw(proto_scopes()), spans=draw(st.lists(proto_spans(), max_size=3)))
                    for _ in range(draw(st.integers(0, 2)))
                ],
            )
            for _ in range(draw(st.integers(1, 2)))
        ]
    )
    scopes = [scope for resource in request.resource_spans for scope in resource.scope_spans if scope.spans]
    if scopes and draw(st.integers(0, 7)) == 0:  # many spans in one request (each gets an id of its own)
        scope = draw(st.sampled_from(scopes))
        scope.spans.extend([scope.spans[0]] * 100)
    return request


@st.composite
def proto_log_records(draw: st.DrawFn) -> LogRecord:
    return LogRecord(
        time_unix_nano=draw(mostly(times, st.just(0))),  # 0: the observed time stands in
        observed_time_unix_nano=draw(times),
        severity_number=draw(mostly(st.integers(0, MAX_SEVERITY_NUMBER), pick(ENUM_OUTLIERS))),
        severity_text=draw(texts),
        body=draw(mostly(proto_values, pick([AnyValue(string_value=""), AnyValue()]))),
        attributes=draw(proto_attributes()),
        trace_id=draw(proto_ids(16)),
        span_id=draw(st.one_of(st.just(b""), proto_ids(8))),
    )


@st.composite
def log_requests(draw: st.DrawFn) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=draw(proto_resources()),
                scope_logs=[
                    ScopeLogs(
                        scope=draw(proto_scopes()),
                        log_records=draw(st.lists(proto_log_records(), max_size=3)),
                    )
                    for _ in range(draw(st.integers(0, 2)))
                ],
            )
            for _ in range(draw(st.integers(1, 2)))
        ]
    )


# -- protobuf: what the decoders must make of them -------------------------------------------------------------


class TooDeep(Exception):
    """An array or kvlist value nested deeper than ``MAX_NESTING_DEPTH``."""


def proto_value(value: AnyValue, depth: int = 0) -> Any:
    """What the API renders for an OTLP value ``depth`` arrays/kvlists deep (0: an attribute's own value)."""
    if depth > MAX_NESTING_DEPTH:
        raise TooDeep
    which = value.WhichOneof("value")
    if which == "string_value":
        return truncate_utf8(value.string_value, MAX_ATTRIBUTE_VALUE_BYTES)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value[:MAX_ATTRIBUTE_VALUE_BYTES]).decode("ascii")
    if which == "array_value":
        return [proto_value(item, depth + 1) for item in value.array_value.values]
    if which == "kvlist_value":
        items: dict[str, Any] = {}
        for item in value.kvlist_value.values:
            items[item.key] = proto_value(item.value, depth + 1)  # the last of a repeated key wins
        return items
    if which is None:
        return "" if depth == 0 else None
    return getattr(value, which)


def proto_attributes_expected(pairs: Any, too_deep: str = "rejects") -> dict[str, Any]:
    """The attributes a ``KeyValue`` list renders as: keys cut to the name limit, of a repeated key the last
    value. A value nested too deeply rejects its span (``"rejects"``); on a resource it is kept as ``""``."""
    attributes: dict[str, Any] = {}
    for pair in pairs:
        try:
            value = proto_value(pair.value)
        except TooDeep:
            if too_deep == "rejects":
                raise
            value = ""
        attributes[truncate_utf8(pair.key, MAX_NAME_BYTES)] = value
    return attributes


def _valid_id(raw: bytes, size: int) -> bool:
    return len(raw) == size and any(raw)


def proto_span_expected(span: Span, resource: Resource, scope: InstrumentationScope) -> dict[str, Any] | None:
    """The span as the API must render it, or None when the decoder must reject it."""
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if not (
        _valid_id(span.trace_id, 16)
        and _valid_id(span.span_id, 8)
        and len(span.parent_span_id) in (0, 8)
        and 0 < start < MAX_TIME_NS
        and end < MAX_TIME_NS
        and all(event.time_unix_nano < MAX_TIME_NS for event in span.events)
        and all(_valid_id(link.trace_id, 16) and _valid_id(link.span_id, 8) for link in span.links)
    ):
        return None
    try:
        attributes = proto_attributes_expected(span.attributes)
        events = [proto_attributes_expected(event.attributes) for event in span.events]
        links = [proto_attributes_expected(link.attributes) for link in span.links]
    except TooDeep:
        return None
    kind = span.kind if 0 <= span.kind <= 5 else 0
    status_code = span.status.code if 0 <= span.status.code <= 2 else 0
    return {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex() if _valid_id(span.parent_span_id, 8) else None,
        "name": truncate_utf8(span.name, MAX_NAME_BYTES),
        "kind": KIND_NAMES[kind],
        "kind_code": kind,
        "start_ns": start,
        "duration_ns": max(0, end - start),  # an end before the start is kept as lasting 0
        "status": STATUS_NAMES[status_code],
        "status_code": status_code,
        "status_message": truncate_utf8(span.status.message, MAX_ATTRIBUTE_VALUE_BYTES),
        "attributes": attributes,
        "resource": proto_attributes_expected(resource.attributes, too_deep="blank"),
        "scope": {
            "name": truncate_utf8(scope.name, MAX_NAME_BYTES),
            "version": truncate_utf8(scope.version, MAX_NAME_BYTES),
        },
        "trace_state": truncate_utf8(span.trace_state, MAX_ATTRIBUTE_VALUE_BYTES),
        "events": [
            {
                "name": truncate_utf8(event.name, MAX_NAME_BYTES),
                "time_ns": event.time_unix_nano,
                "attributes": a,
            }
            for event, a in zip(span.events, events, strict=True)
        ],
        "links": [
            {
                "trace_id": link.trace_id.hex(),
                "span_id": link.span_id.hex(),
                "trace_state": truncate_utf8(link.trace_state, MAX_ATTRIBUTE_VALUE_BYTES),
                "attributes": a,
            }
            for link, a in zip(span.links, links, strict=True)
        ],
    }


def check_trace_request(
    stores: dict[str, Store], request: ExportTraceServiceRequest
) -> tuple[DecodeResult, list[dict[str, Any]]] | None:
    """Decode a protobuf trace export and hold the answer to everything the decoder and the stores promise;
    the result and the spans as the API renders them, in request order (None when the request is refused)."""
    request = copy.deepcopy(request)
    salt, span_numbers = uuid.uuid4().bytes, itertools.count(1)
    expected: dict[str, dict[str, Any]] = {}
    total = 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                total += 1
                if _valid_id(span.trace_id, 16):
                    span.trace_id = salted(salt, span.trace_id)
                if _valid_id(span.span_id, 8):
                    span.span_id = next(span_numbers).to_bytes(8, "big")
                want = proto_span_expected(span, resource_spans.resource, scope_spans.scope)
                if want is not None:
                    expected[want["span_id"]] = want
    try:
        result = decode_otlp_proto(request.SerializeToString())
    except DecodeError as error:
        assert total and not expected, f"refused a request with valid spans: {error}"
        return None
    assert result.rejected_spans == total - len(expected), result.error_message
    spans = store_spans(stores, result)
    assert spans.keys() == expected.keys()
    for span_id, span in spans.items():
        assert_service(span)
        assert_same(expected[span_id], {key: span[key] for key in expected[span_id]}, f"span {span_id}")
    return result, [spans[span_id] for span_id in expected]


def proto_body_expected(body: AnyValue) -> Any:
    """The text of a log record's body (None also when an array or kvlist body, only rendered, is not
    compared: it is JSON, cut as a whole to the value limit)."""
    which = body.WhichOneof("value")
    if which == "string_value":
        return truncate_utf8(body.string_value, MAX_ATTRIBUTE_VALUE_BYTES) or None
    if which == "bool_value":
        return "true" if body.bool_value else "false"
    if which == "int_value":
        return str(body.int_value)
    if which == "double_value":
        return body.double_value
    if which == "bytes_value":
        text = orjson.dumps(base64.b64encode(body.bytes_value).decode()).decode()
        return truncate_utf8(text, MAX_ATTRIBUTE_VALUE_BYTES)
    return None


def proto_log_expected(
    record: LogRecord, resource: Resource, scope: InstrumentationScope
) -> dict[str, Any] | None:
    """The record as the API must render it, or None when the decoder must reject it."""
    when = record.time_unix_nano or record.observed_time_unix_nano
    if not (
        len(record.trace_id) == 16
        and len(record.span_id) in (0, 8)
        and 0 < when < MAX_TIME_NS
        and record.observed_time_unix_nano < MAX_TIME_NS
    ):
        return None
    try:
        attributes = proto_attributes_expected(record.attributes)
        proto_attributes_expected([KeyValue(key="body", value=record.body)])
    except TooDeep:
        return None
    severity = record.severity_number if 0 <= record.severity_number <= MAX_SEVERITY_NUMBER else 0
    return {
        "time_ns": when,
        "observed_time_ns": record.observed_time_unix_nano,
        "trace_id": record.trace_id.hex(),
        "span_id": record.span_id.hex() if _valid_id(record.span_id, 8) else None,
        "severity": truncate_utf8(record.severity_text, MAX_NAME_BYTES) or severity_name(severity),
        "severity_number": severity,
        "attributes": attributes,
        "resource": proto_attributes_expected(resource.attributes, too_deep="blank"),
        "scope": truncate_utf8(scope.name, MAX_NAME_BYTES),
    }


def check_log_request(
    stores: dict[str, Store], request: ExportLogsServiceRequest
) -> tuple[DecodeResult, list[dict[str, Any]]] | None:
    """Decode a protobuf logs export and hold the answer to everything the decoder and the stores promise;
    the result and the records as the API renders them, in request order (None when the request is refused)."""
    request = copy.deepcopy(request)
    salt, record_numbers = uuid.uuid4().bytes, itertools.count()
    expected: dict[str, tuple[dict[str, Any], Any]] = {}
    traced = 0
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                if len(record.trace_id) == 0 or record.trace_id == bytes(16):
                    continue  # no trace context: dropped, which is policy
                traced += 1
                if len(record.trace_id) == 16:
                    record.trace_id = salted(salt, next(record_numbers))  # a trace per record
                want = proto_log_expected(record, resource_logs.resource, scope_logs.scope)
                if want is not None:
                    expected[want["trace_id"]] = (want, proto_body_expected(record.body))
    try:
        result = decode_otlp_logs_proto(request.SerializeToString())
    except DecodeError as error:
        assert traced and not expected, f"refused a request with valid records: {error}"
        return None
    assert result.rejected_spans == traced - len(expected), result.error_message
    logs = store_logs(stores, result)
    assert logs.keys() == expected.keys()
    for trace_id, log in logs.items():
        want, body = expected[trace_id]
        assert_service(log)
        assert_same(want, {key: log[key] for key in want}, f"log record of trace {trace_id}")
        if body is not None:
            assert_same(body, log["body"], f"body of trace {trace_id}")
    return result, [logs[trace_id] for trace_id in expected]


@PROPERTY
@given(request=trace_requests())
def test_otlp_proto_spans_decode_to_what_every_store_holds(
    stores: dict[str, Store], request: ExportTraceServiceRequest
) -> None:
    check_trace_request(stores, request)


@PROPERTY
@given(request=log_requests())
def test_otlp_proto_logs_decode_to_what_every_store_holds(
    stores: dict[str, Store], request: ExportLogsServiceRequest
) -> None:
    check_log_request(stores, request)


# -- JSON written as raw text: repeated keys, escapes, numbers that parsers treat differently ------------------


class Obj(tuple):  # type: ignore[type-arg]
    """A JSON object as written: its ``(key, value)`` pairs in order, so a key may repeat as it can on the wire."""


@dataclass(frozen=True)
class Raw:
    """JSON text written verbatim, and what a parser makes of it (``REFUSED``: no parser accepts it)."""

    text: str
    value: Any


REFUSED = object()
#: JSON text no parser accepts (a number past a double): the whole request is refused.
UNPARSABLE = [Raw("1e400", REFUSED)]
#: Escaped lone surrogates (what ``JSON.stringify`` writes for a string cut inside a pair): each reads as U+FFFD.
LONE_SURROGATES = [
    Raw('"\\ud800"', "\ufffd"),
    Raw('"a\\udfffb"', "a\ufffdb"),
    Raw('"\\ud83e"', "\ufffd"),
    Raw('"\\udc00\\ud800"', "\ufffd\ufffd"),
    Raw('"\\ud800\\u0041"', "\ufffdA"),
    Raw('"\\\\ud800"', "\\ud800"),
]
#: An integer past 64 bits: parsers read it as a double.
HUGE_INTEGER = Raw("123456789012345678901234567890", 1.2345678901234568e29)


@dataclass(frozen=True)
class Id:
    """A valid id spelled when the example runs: a trace shared by spans (``slot``), or a fresh id."""

    kind: str  # "trace", "trace64" (Zipkin's 64-bit trace ids), "span", "log" (a trace of its own)
    slot: int = 0


class Refused(Exception):
    """The document holds JSON text no parser accepts."""


def dump(value: Any) -> str:
    if isinstance(value, Obj):
        return "{" + ",".join(f"{dump(key)}:{dump(item)}" for key, item in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(item) for item in value) + "]"
    if isinstance(value, Raw):
        return value.text
    return json.dumps(value, ensure_ascii=False)


def parse(value: Any) -> Any:
    """What a JSON parser reads: the last value of a repeated key, integers past 64 bits as doubles."""
    if isinstance(value, Obj):
        return {key: parse(item) for key, item in value}
    if isinstance(value, list):
        return [parse(item) for item in value]
    if isinstance(value, Raw):
        if value.value is REFUSED:
            raise Refused(value.text)
        return value.value
    if type(value) is int and not -(2**63) <= value < 2**64:
        return float(value)
    return value


def spell_ids(value: Any, salt: bytes, numbers: Iterator[int]) -> Any:
    """The document with every ``Id`` spelled in hex: trace slots salted for this example, other ids fresh."""
    if isinstance(value, Obj):
        return Obj((key, spell_ids(item, salt, numbers)) for key, item in value)
    if isinstance(value, list):
        return [spell_ids(item, salt, numbers) for item in value]
    if isinstance(value, Id):
        if value.kind == "trace":
            return salted(salt, value.slot).hex()
        if value.kind == "trace64":
            return salted(salt, value.slot)[:8].hex()
        if value.kind == "span":
            return next(numbers).to_bytes(8, "big").hex()
        return salted(salt, "log", next(numbers)).hex()
    return value


def json_body(document: Any) -> tuple[bytes, Any]:
    """The document's bytes for this example, and what a parser reads from them (None: no parser would)."""
    spelled = spell_ids(document, uuid.uuid4().bytes, itertools.count(1))
    body = dump(spelled).encode()
    try:
        parsed = parse(spelled)
    except Refused:
        return body, None
    assert parse_json(body) == parsed, "the test's model of a JSON parser is wrong"
    return body, parsed


def decode_or_refuse(
    decoder: Callable[[bytes], DecodeResult], body: bytes, parsed: Any
) -> DecodeResult | None:
    """Decode; a refusal is fine (a 400), but not one from the catch-all for inputs nobody foresaw, and a
    document no JSON parser accepts must be refused."""
    try:
        result = decoder(body)
    except DecodeError as error:
        assert str(error)
        assert not str(error).startswith("cannot decode"), f"an unforeseen input: {error}"
        return None
    assert parsed is not None, "a document no JSON parser accepts was decoded"
    return result


@st.composite
def objects(
    draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]], optional: tuple[str, ...] = ()
) -> Obj:
    """An object of these fields (optional ones maybe absent), now and then one of them written twice."""
    pairs = [
        (name, draw(value)) for name, value in fields.items() if name not in optional or draw(st.booleans())
    ]
    if pairs and draw(st.integers(0, 5)) == 0:
        name = draw(st.sampled_from([name for name, _ in pairs]))
        pairs.insert(draw(st.integers(0, len(pairs))), (name, draw(fields[name])))
    return Obj(pairs)


@st.composite
def poisoned(draw: st.DrawFn, items: list[Any], make: Callable[[Raw], Any]) -> list[Any]:
    """``items``, once in ten with one more made around JSON text no parser accepts."""
    if draw(st.integers(0, 9)) == 0:
        items = [*items, make(draw(pick(UNPARSABLE)))]
    return items


def unparsable_resource(raw: Raw) -> Obj:
    """A resource whose one attribute key is JSON text no parser accepts."""
    return Obj([("resource", Obj([("attributes", [Obj([("key", raw)])])]))])


json_texts = st.one_of(
    texts,
    pick(
        [
            Raw('"\\u0000"', "\x00"),
            Raw('"\\ud83e\\uddf5"', "\U0001f9f5"),
            Raw('"\\u202e"', "\u202e"),
            *LONE_SURROGATES,
        ]
    ),
)
json_int64s = mostly(st.one_of(int64s, int64s.map(str)), pick([2**63, 2**64, -(2**63) - 1, HUGE_INTEGER]))
json_doubles = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    pick(["NaN", "Infinity", "-Infinity", -0.0, 5e-324, 2**70]),
)
json_leaves = st.one_of(
    objects({"stringValue": json_texts}),
    objects({"boolValue": st.booleans()}),
    objects({"intValue": json_int64s}),
    objects({"doubleValue": json_doubles}),
    objects({"bytesValue": raw_bytes.map(lambda raw: base64.b64encode(raw).decode("ascii"))}),
    objects({"stringValue": json_texts, "intValue": int64s.map(str)}),  # two fields: the first one set counts
    st.just(Obj(())),  # no value
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda items: Obj([("arrayValue", Obj([("values", items)]))])),
        attribute_pairs(children, 3).map(
            lambda pairs: Obj(
                [("kvlistValue", Obj([("values", [Obj([("key", k), ("value", v)]) for k, v in pairs])]))]
            )
        ),
    ),
    max_leaves=5,
)


@st.composite
def json_attributes(draw: st.DrawFn, max_groups: int = 4) -> list[Obj]:
    """A ``KeyValue`` list with keys repeated; now and then a value null or absent, or ``"key"`` written twice
    in one object (the last one counts)."""
    items = []
    for key, value in draw(attribute_pairs(json_values, max_groups)):
        pairs: list[tuple[str, Any]] = [("key", key), ("value", value)]
        roll = draw(st.integers(0, 15))
        if roll == 0:
            pairs[1] = ("value", None)
        elif roll == 1:
            pairs.pop()
        if draw(st.integers(0, 5)) == 0:
            pairs.insert(0, ("key", draw(keys)))
        items.append(Obj(pairs))
    return items


def json_times(value: int) -> st.SearchStrategy[Any]:
    """A time as OTLP/JSON may write it (a number or a decimal string), now and then out of any range."""
    return mostly(pick([value, str(value)]), pick([-1, 2**64, HUGE_INTEGER, float(value)]))


@st.composite
def json_resources(draw: st.DrawFn) -> Obj:
    attributes = draw(json_attributes(3))
    for value in draw(st.lists(json_leaves, max_size=3)):
        attributes.insert(
            draw(st.integers(0, len(attributes))), Obj([("key", "service.name"), ("value", value)])
        )
    return Obj([("attributes", attributes)])


# -- JSON: what the decoders must make of them -------------------------------------------------------------------

_JSON_FIELD_KIND = {
    "stringValue": "string", "string_value": "string", "boolValue": "bool", "bool_value": "bool",
    "intValue": "int", "int_value": "int", "doubleValue": "double", "double_value": "double",
    "bytesValue": "bytes", "bytes_value": "bytes", "arrayValue": "array", "array_value": "array",
    "kvlistValue": "kvlist", "kvlist_value": "kvlist",
}  # fmt: skip
_SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class Rejected(Exception):
    """The span or log record holding this value must have been rejected."""


def json_value(value: Any, depth: int = 0) -> Any:
    """What the API renders for a parsed OTLP/JSON ``AnyValue`` ``depth`` levels deep (None: no value)."""
    if not isinstance(value, dict):
        return None
    for field, item in value.items():  # the first field that is set counts
        kind = _JSON_FIELD_KIND.get(field)
        if kind is None or item is None:
            continue
        if kind == "string":
            return truncate_utf8(item, MAX_ATTRIBUTE_VALUE_BYTES)
        if kind == "bool":
            return item
        if kind == "int":
            number = int(item)
            if not -(2**63) <= number < 2**63:
                raise Rejected
            return number
        if kind == "double":
            double = _SPECIAL_DOUBLES[item] if isinstance(item, str) else float(item)
            # Inside arrays and kvlists values are JSON, which has no NaN or infinity: they become null.
            return None if depth and not math.isfinite(double) else double
        if kind == "bytes":
            return base64.b64encode(base64.b64decode(item)[:MAX_ATTRIBUTE_VALUE_BYTES]).decode("ascii")
        if depth >= MAX_NESTING_DEPTH:
            raise Rejected
        if kind == "array":
            return [json_value(element, depth + 1) for element in item.get("values") or []]
        items: dict[str, Any] = {}
        for pair in item.get("values") or []:
            items[pair["key"]] = json_value(pair.get("value"), depth + 1)
        return items
    return None


def json_attributes_expected(pairs: Any) -> dict[str, Any]:
    """Keys cut to the name limit; of a repeated key, the last value that is set."""
    attributes: dict[str, Any] = {}
    for pair in pairs or []:
        value = json_value(pair.get("value"))
        if value is not None:
            attributes[truncate_utf8(pair["key"], MAX_NAME_BYTES)] = value
    return attributes


# -- OTLP/JSON spans ------------------------------------------------------------------------------------------

json_trace_ids = mostly(
    st.builds(Id, st.just("trace"), mostly(st.just(0), st.integers(0, 2), 3)),
    pick(["", "0" * 32, "0" * 16, "xyz", "5b8efff798038103d269b633813fc60g", " " * 32]),
)
json_span_ids = mostly(st.just(Id("span")), pick(["", "0" * 16, "abc", "0" * 15 + "g"]))


@st.composite
def json_spans(draw: st.DrawFn) -> Obj:
    start, end = draw(start_and_end())
    event = objects(
        {"timeUnixNano": times.flatmap(json_times), "name": json_texts, "attributes": json_attributes(2)},
        optional=("attributes",),
    )
    link = objects(
        {
            "traceId": json_trace_ids,
            "spanId": json_span_ids,
            "traceState": json_texts,
            "attributes": json_attributes(2),
        },
        optional=("traceState", "attributes"),
    )
    status = objects(
        {
            "code": mostly(st.integers(0, 2), pick([3, -1, "STATUS_CODE_ERROR", "STATUS_CODE_BOGUS"])),
            "message": json_texts,
        },
        optional=("code", "message"),
    )
    kinds = mostly(st.integers(0, 5), pick([6, -1, 2**70, "SPAN_KIND_SERVER", "SPAN_KIND_BOGUS", "2"]))
    fields = {
        "traceId": json_trace_ids,
        "spanId": json_span_ids,
        "parentSpanId": mostly(st.just(Id("span")), pick(["", "0" * 16, "zz"])),
        "name": json_texts,
        "kind": kinds,
        "startTimeUnixNano": json_times(start),
        "endTimeUnixNano": json_times(end),
        "traceState": json_texts,
        "attributes": json_attributes(),
        "events": st.lists(event, max_size=2),
        "links": st.lists(link, max_size=2),
        "status": status,
    }
    return draw(objects(fields, optional=("parentSpanId", "kind", "traceState", "events", "links", "status")))


@st.composite
def json_trace_requests(draw: st.DrawFn) -> Obj:
    def scope_spans() -> Obj:
        spans = draw(st.lists(json_spans(), max_size=3))
        if spans and draw(st.integers(0, 7)) == 0:
            spans += [spans[0]] * 50  # many spans (each gets a span id of its own)
        scope = Obj([("name", draw(json_texts)), ("version", draw(json_texts))])
        return Obj([("scope", scope), ("spans", spans)])

    resource_spans = [
        Obj(
            [
                ("resource", draw(json_resources())),
                ("scopeSpans", [scope_spans() for _ in range(draw(st.integers(0, 2)))]),
            ]
        )
        for _ in range(draw(st.integers(1, 2)))
    ]
    return Obj([("resourceSpans", draw(poisoned(resource_spans, unparsable_resource)))])


def check_json_spans(stores: dict[str, Store], document: Obj) -> None:
    body, parsed = json_body(document)
    result = decode_or_refuse(decode_otlp_json, body, parsed)
    if result is None:
        return
    spans = store_spans(stores, result)
    sources = {
        span["spanId"]: (span, resource_spans.get("resource") or {})
        for resource_spans in parsed["resourceSpans"]
        for scope_spans in resource_spans.get("scopeSpans") or []
        for span in scope_spans.get("spans") or []
    }
    for span_id, span in spans.items():
        assert_service(span)
        assert 0 <= span["kind_code"] <= 5 and 0 <= span["status_code"] <= 2
        source, resource = sources[span_id]
        assert_same(json_attributes_expected(source.get("attributes")), span["attributes"], f"span {span_id}")
        assert_same(json_attributes_expected(resource.get("attributes")), span["resource"], "resource")
        for event, decoded in zip(source.get("events") or [], span["events"], strict=True):
            assert_same(json_attributes_expected(event.get("attributes")), decoded["attributes"], "event")
        for link, decoded in zip(source.get("links") or [], span["links"], strict=True):
            assert_same(json_attributes_expected(link.get("attributes")), decoded["attributes"], "link")


@PROPERTY
@given(document=json_trace_requests())
def test_otlp_json_spans_decode_to_what_every_store_holds(stores: dict[str, Store], document: Obj) -> None:
    check_json_spans(stores, document)


# -- OTLP/JSON logs -------------------------------------------------------------------------------------------


@st.composite
def json_log_records(draw: st.DrawFn) -> Obj:
    fields = {
        "traceId": mostly(st.just(Id("log")), pick(["", "0" * 32, "0" * 16, "xyz"])),
        "spanId": mostly(st.just(Id("span")), pick(["", "0" * 16, "abc"])),
        "timeUnixNano": times.flatmap(json_times),
        "observedTimeUnixNano": times.flatmap(json_times),
        "severityNumber": mostly(st.integers(0, 24), pick([-1, 30, "SEVERITY_NUMBER_WARN", "BOGUS"])),
        "severityText": json_texts,
        "body": mostly(json_values, pick([Obj([("stringValue", "")]), None])),
        "attributes": json_attributes(),
    }
    return draw(
        objects(fields, optional=("spanId", "timeUnixNano", "severityNumber", "severityText", "body"))
    )


@st.composite
def json_log_requests(draw: st.DrawFn) -> Obj:
    def scope_logs() -> Obj:
        scope = Obj([("name", draw(json_texts))])
        return Obj([("scope", scope), ("logRecords", draw(st.lists(json_log_records(), max_size=3)))])

    resource_logs = [
        Obj(
            [
                ("resource", draw(json_resources())),
                ("scopeLogs", [scope_logs() for _ in range(draw(st.integers(0, 2)))]),
            ]
        )
        for _ in range(draw(st.integers(1, 2)))
    ]
    return Obj([("resourceLogs", draw(poisoned(resource_logs, unparsable_resource)))])


def check_json_logs(stores: dict[str, Store], document: Obj) -> None:
    body, parsed = json_body(document)
    result = decode_or_refuse(decode_otlp_logs_json, body, parsed)
    if result is None:
        return
    logs = store_logs(stores, result)
    sources = {
        record["traceId"]: (record, resource_logs.get("resource") or {})
        for resource_logs in parsed["resourceLogs"]
        for scope_logs in resource_logs.get("scopeLogs") or []
        for record in scope_logs.get("logRecords") or []
    }
    for trace_id, log in logs.items():
        record, resource = sources[trace_id]
        assert_service(log)
        assert_same(
            json_attributes_expected(record.get("attributes")), log["attributes"], f"log of {trace_id}"
        )
        assert_same(json_attributes_expected(resource.get("attributes")), log["resource"], "resource")


@PROPERTY
@given(document=json_log_requests())
def test_otlp_json_logs_decode_to_what_every_store_holds(stores: dict[str, Store], document: Obj) -> None:
    check_json_logs(stores, document)


# -- Zipkin v2 JSON -----------------------------------------------------------------------------------------

zipkin_tag_values = st.one_of(
    json_texts, st.booleans(), int64s, st.floats(allow_nan=False, allow_infinity=False), st.just(HUGE_INTEGER)
)
#: Tags as written: a key may repeat (``{"a":"1","a":"2"}``), a value may be a number or a boolean.
zipkin_tags = attribute_pairs(zipkin_tag_values).map(Obj)
zipkin_micros = mostly(
    st.integers(NOW_NS // 1000, NOW_NS // 1000 + 10**6),
    pick([0, -1, 2**63 - 1, 2**64, 1.5e15, "1700000000000000", HUGE_INTEGER]),
)
zipkin_endpoints = objects(
    {
        "serviceName": json_texts,
        "ipv4": pick(["10.0.0.1", "", "x" * 100]),
        "port": pick([80, 0, 70000, -1]),
    },
    optional=("serviceName", "ipv4", "port"),
)
zipkin_spans = objects(
    {
        "traceId": mostly(
            st.builds(Id, pick(["trace", "trace64"]), st.integers(0, 2)),
            pick(["", "0" * 32, "0" * 16, "xyz"]),
        ),
        # Zipkin reads an id of fewer digits zero-padded ("abc" is a valid id there): junk that stays junk.
        "id": mostly(st.just(Id("span")), pick(["", "0" * 16, "0", "0" * 15 + "g", "1" * 17])),
        "parentId": mostly(st.just(Id("span")), pick(["", "0" * 16, "zz"])),
        "name": json_texts,
        "kind": mostly(pick(["CLIENT", "SERVER", "PRODUCER", "CONSUMER"]), pick(["BOGUS", ""])),
        "timestamp": zipkin_micros,
        "duration": mostly(st.integers(0, 10**6), pick([-1, 2**62, 0.5])),
        "localEndpoint": zipkin_endpoints,
        "remoteEndpoint": zipkin_endpoints,
        "tags": zipkin_tags,
        "annotations": st.lists(objects({"timestamp": zipkin_micros, "value": json_texts}), max_size=2),
        "shared": st.booleans(),
        "debug": st.booleans(),
    },
    optional=(
        "parentId",
        "kind",
        "duration",
        "localEndpoint",
        "remoteEndpoint",
        "tags",
        "annotations",
        "shared",
        "debug",
    ),
)


@st.composite
def zipkin_requests(draw: st.DrawFn) -> list[Any]:
    spans = draw(st.lists(zipkin_spans, max_size=5))
    if spans and draw(st.integers(0, 7)) == 0:
        spans += [spans[0]] * 50
    return draw(poisoned(spans, lambda raw: Obj([("name", raw)])))


def zipkin_tags_expected(tags: dict[str, Any] | None) -> dict[str, str]:
    """Tags are strings; a number or a boolean keeps its JSON text. Of a repeated key, the last value. The tags
    that carry the status (``error``, ``otel.status_code``, ``otel.status_description``) are the status."""
    attributes: dict[str, str] = {}
    for key, value in (tags or {}).items():
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        attributes[truncate_utf8(key, MAX_NAME_BYTES)] = truncate_utf8(text, MAX_ATTRIBUTE_VALUE_BYTES)
    for key in ("error", "otel.status_code", "otel.status_description"):
        attributes.pop(key, None)
    return attributes


def zipkin_decoded_id(span: dict[str, Any]) -> Any:
    """The id a Zipkin span is stored under: its own, or for a shared span's server half one derived from it."""
    span_id = span.get("id")
    if span.get("shared") is True and span.get("kind") != "CLIENT" and isinstance(span_id, str):
        try:
            return server_half_id(bytes.fromhex(span_id)).hex()
        except ValueError:
            return span_id
    return span_id


def check_zipkin(stores: dict[str, Store], document: list[Any]) -> None:
    body, parsed = json_body(document)
    result = decode_or_refuse(decode_zipkin_json, body, parsed)
    if result is None:
        return
    spans = store_spans(stores, result)
    sources = {zipkin_decoded_id(span): span for span in parsed if isinstance(span, dict)}
    for span_id, span in spans.items():
        assert_service(span)
        tags = zipkin_tags_expected(sources[span_id].get("tags"))
        assert_same(tags, {key: span["attributes"].get(key) for key in tags}, f"tags of {span_id}")


@PROPERTY
@given(document=zipkin_requests())
def test_zipkin_json_decodes_to_what_every_store_holds(stores: dict[str, Store], document: list[Any]) -> None:
    check_zipkin(stores, document)


# -- regressions: one example of each defect these properties found -----------------------------------------


def span_of(**fields: Any) -> Span:
    """A valid span, but for ``fields``."""
    defaults: dict[str, Any] = {
        "trace_id": TRACE_SLOTS[0],
        "span_id": b"\x01" * 8,
        "name": "op",
        "start_time_unix_nano": NOW_NS,
        "end_time_unix_nano": NOW_NS + 1000,
    }
    return Span(**(defaults | fields))


def trace_request(
    *spans: Span,
    resource: Sequence[KeyValue] = (),
    scope: InstrumentationScope | None = None,
) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=resource), scope_spans=[ScopeSpans(scope=scope, spans=spans)]
            )
        ]
    )


def kv(key: str, **value: Any) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


def test_repeated_keys_keep_their_last_value_in_every_store(stores: dict[str, Store]) -> None:
    """The defect that started this file: a key repeated on the wire decoded into a map the DuckDB store
    refused ("Arrow map contains duplicate key"), failing the whole write. The last value wins, whatever its
    type, on spans, resources, events, links and log records."""
    repeated = [kv("k", string_value="first"), kv("other", bool_value=True), kv("k", int_value=7)]
    span = span_of(
        attributes=repeated,
        events=[Span.Event(time_unix_nano=NOW_NS, name="e", attributes=repeated)],
        links=[Span.Link(trace_id=b"\x02" * 16, span_id=b"\x02" * 8, attributes=repeated)],
    )
    checked = check_trace_request(stores, trace_request(span, resource=[*repeated, *repeated]))
    assert checked is not None
    (rendered,) = checked[1]
    for attributes in (
        rendered["attributes"],
        rendered["resource"],
        rendered["events"][0]["attributes"],
        rendered["links"][0]["attributes"],
    ):
        assert attributes == {"k": 7, "other": True}
    record = LogRecord(time_unix_nano=NOW_NS, trace_id=b"\x03" * 16, attributes=repeated)
    logs = check_log_request(
        stores,
        ExportLogsServiceRequest(resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[record])])]),
    )
    assert logs is not None and logs[1][0]["attributes"] == {"k": 7, "other": True}


def test_a_time_past_int64_rejects_only_its_span(stores: dict[str, Store]) -> None:
    """Times are fixed64: compared with int64 scalars, one start or end at or past 2**63 failed the cast of the
    whole column, and the request was refused (a 400) with the valid spans in it."""
    request = trace_request(
        span_of(span_id=b"\x01" * 8),
        span_of(span_id=b"\x02" * 8, start_time_unix_nano=2**64 - 1, end_time_unix_nano=2**64 - 1),
        span_of(span_id=b"\x03" * 8, end_time_unix_nano=2**63),
    )
    checked = check_trace_request(stores, request)
    assert checked is not None
    result, spans = checked
    assert (len(spans), result.rejected_spans) == (1, 2)
    assert "span 1: startTimeUnixNano out of range" in result.error_message


def test_an_event_time_out_of_range_rejects_its_span(stores: dict[str, Store]) -> None:
    """An event time at or past 2**63 was cast to a negative int64 and stored (1969); the JSON decoders reject
    such a span, and so does protobuf now, naming the event time."""
    request = trace_request(
        span_of(span_id=b"\x01" * 8),
        span_of(span_id=b"\x02" * 8, events=[Span.Event(time_unix_nano=2**64 - 1, name="late")]),
    )
    checked = check_trace_request(stores, request)
    assert checked is not None
    assert checked[0].rejected_spans == 1
    assert "event timeUnixNano out of range" in checked[0].error_message


def test_a_long_array_value_is_still_json(stores: dict[str, Store]) -> None:
    """An array or kvlist whose JSON passed 64 KiB was cut as a whole, mid-JSON: stored, but rendering the
    trace failed (``orjson.JSONDecodeError``). Strings and bytes inside are cut instead, as the JSON decoders
    cut them."""
    strings = [AnyValue(string_value=LONG_VALUE)] * 2
    pairs = [
        KeyValue(key="sql", value=AnyValue(string_value=LONG_VALUE)),
        kv("raw", bytes_value=b"\xff" * 70_000),
    ]
    span = span_of(
        attributes=[
            KeyValue(key="list", value=AnyValue(array_value=ArrayValue(values=strings))),
            KeyValue(key="map", value=AnyValue(kvlist_value=KeyValueList(values=pairs))),
        ]
    )
    checked = check_trace_request(stores, trace_request(span))
    assert checked is not None
    attributes = checked[1][0]["attributes"]
    cut = truncate_utf8(LONG_VALUE, MAX_ATTRIBUTE_VALUE_BYTES)
    assert attributes["list"] == [cut, cut]
    assert attributes["map"]["sql"] == cut
    assert len(base64.b64decode(attributes["map"]["raw"])) == MAX_ATTRIBUTE_VALUE_BYTES


def test_unknown_kinds_and_status_codes_are_unspecified_in_every_store(stores: dict[str, Store]) -> None:
    """Open enums carry any int32; cut to int8 as they were, kind 258 read as 2 (SERVER), and status -1 read
    back as -1 from DuckDB but 0 from ClickHouse. Unknown values are now 0, as Jaeger shows them."""
    request = trace_request(
        span_of(span_id=b"\x01" * 8, kind=258, status=Status(code=Status.StatusCode.ValueType(-1))),
        span_of(span_id=b"\x02" * 8, kind=6, status=Status(code=Status.StatusCode.ValueType(3))),
    )
    checked = check_trace_request(stores, request)
    assert checked is not None
    assert [(span["kind_code"], span["status_code"]) for span in checked[1]] == [(0, 0), (0, 0)]


def test_names_keys_and_values_are_cut_to_the_limits(stores: dict[str, Store]) -> None:
    """The JSON decoders cut attribute keys, event and scope names, status messages and trace state to the
    limits of ``decoders.limits``; protobuf cut none of them, and cut bytes after base64 (so mid-group). Keys
    are cut before repeated ones collapse: two long keys that differ past the limit are one key."""
    long_key = "k" * MAX_NAME_BYTES
    span = span_of(
        attributes=[kv(long_key + "1", string_value="first"), kv(long_key + "2", string_value="second")],
        events=[Span.Event(time_unix_nano=NOW_NS, name=LONG_VALUE)],
        links=[Span.Link(trace_id=b"\x02" * 16, span_id=b"\x02" * 8, trace_state=LONG_VALUE)],
        status=Status(code=Status.STATUS_CODE_ERROR, message=LONG_VALUE),
        trace_state=LONG_VALUE,
    )
    span.attributes.append(kv("raw", bytes_value=b"\xfb" * 70_000))
    scope = InstrumentationScope(name=LONG_VALUE, version=LONG_VALUE)
    checked = check_trace_request(stores, trace_request(span, scope=scope))
    assert checked is not None
    (rendered,) = checked[1]
    assert rendered["attributes"][long_key] == "second"
    assert len(base64.b64decode(rendered["attributes"]["raw"])) == MAX_ATTRIBUTE_VALUE_BYTES
    value, name = (
        truncate_utf8(LONG_VALUE, MAX_ATTRIBUTE_VALUE_BYTES),
        truncate_utf8(LONG_VALUE, MAX_NAME_BYTES),
    )
    assert (
        rendered["status_message"] == rendered["trace_state"] == rendered["links"][0]["trace_state"] == value
    )
    assert rendered["events"][0]["name"] == rendered["scope"]["name"] == rendered["scope"]["version"] == name


@pytest.mark.parametrize(
    ("names", "service"),
    [
        ([kv("service.name", string_value="first"), kv("service.name", string_value="last")], "last"),
        ([kv("service.name", string_value="checkout"), kv("service.name", int_value=7)], "7"),
        ([kv("service.name", string_value="checkout"), kv("service.name", string_value="")], UNKNOWN_SERVICE),
    ],
)
def test_the_service_is_the_last_service_name(
    stores: dict[str, Store], names: list[KeyValue], service: str
) -> None:
    """The service column read only string values of ``service.name``: when the last value was of another type
    or empty, it kept an earlier string, so the span named a service its resource did not. The JSON decoders
    take the text of the last value, and so does protobuf now."""
    checked = check_trace_request(stores, trace_request(span_of(), resource=names))
    assert checked is not None
    assert checked[1][0]["service"] == service


def test_an_all_zero_parent_is_a_root(stores: dict[str, Store]) -> None:
    """Protobuf kept an all-zero parent id as a parent; the JSON decoders read it as "no parent", as exporters
    that write zeros for a root mean it."""
    checked = check_trace_request(stores, trace_request(span_of(parent_span_id=bytes(8))))
    assert checked is not None
    assert checked[1][0]["parent_span_id"] is None


def test_an_empty_log_body_reads_back_the_same_from_every_store(stores: dict[str, Store]) -> None:
    """An empty string body read back as ``""`` from DuckDB and null from ClickHouse (whose ``otel_logs`` keeps
    both as ``''``). Both decoders now make it null."""
    record = LogRecord(time_unix_nano=NOW_NS, trace_id=b"\x04" * 16, body=AnyValue(string_value=""))
    request = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[record])])]
    )
    checked = check_log_request(stores, request)
    assert checked is not None and checked[1][0]["body"] is None
    trace_id = uuid.uuid4().hex
    record_json = {"traceId": trace_id, "timeUnixNano": str(NOW_NS), "body": {"stringValue": ""}}
    document = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record_json]}]}]}
    logs = store_logs(stores, decode_otlp_logs_json(orjson.dumps(document)))
    assert logs[trace_id]["body"] is None

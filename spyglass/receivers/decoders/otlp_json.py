"""OTLP/JSON ``ExportTraceServiceRequest`` bodies -> validated span batches.

The OTLP JSON encoding is the protobuf JSON mapping with two exceptions: trace and span ids are hex, not base64,
and enums are integers (names are accepted too, as protobuf's own parser does). 64-bit integers may be strings
or numbers, and both the lowerCamelCase and the proto snake_case field names are accepted.

A request whose shape is wrong is refused whole (``DecodeError``); a span that is well-formed but invalid (bad
id, impossible times, runaway nesting) is dropped and counted, and the rest are accepted (partial success).
Paths in messages are built only once something is wrong, so a valid span costs little more than its dict
lookups.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, cast

import orjson

from spyglass.model.attributes import encode_value
from spyglass.model.builder import AttributePairs, SpanBatchBuilder, TypePairs
from spyglass.model.schema import UNKNOWN_SERVICE, SpanKind, StatusCode, ValueType
from spyglass.receivers.decoders.limits import (
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES_PER_SPAN,
    MAX_NAME_BYTES,
    MAX_NESTING_DEPTH,
    SPAN_ID_BYTES,
    TRACE_ID_BYTES,
    Problem,
    RequestMalformed,
    SpanRejected,
    finish_batch,
    is_zero_hex,
    parse_hex_id,
    preview,
    time_in_range,
    time_problem,
    truncate_utf8,
)
from spyglass.receivers.decoders.result import DecodeError, DecodeResult, unforeseen

__all__ = ["decode_otlp_json"]

_STRING, _BOOL, _INT, _DOUBLE, _ARRAY, _KVLIST, _BYTES = range(7)
_ANY_VALUE_FIELDS: dict[str, int] = {
    "stringValue": _STRING,
    "string_value": _STRING,
    "boolValue": _BOOL,
    "bool_value": _BOOL,
    "intValue": _INT,
    "int_value": _INT,
    "doubleValue": _DOUBLE,
    "double_value": _DOUBLE,
    "arrayValue": _ARRAY,
    "array_value": _ARRAY,
    "kvlistValue": _KVLIST,
    "kvlist_value": _KVLIST,
    "bytesValue": _BYTES,
    "bytes_value": _BYTES,
}
_KIND_NAMES: dict[str, int] = {f"SPAN_KIND_{kind.name}": kind.value for kind in SpanKind}
_STATUS_NAMES: dict[str, int] = {f"STATUS_CODE_{code.name}": code.value for code in StatusCode}
_SPECIAL_DOUBLES: dict[str, float] = {
    "NaN": float("nan"),
    "Infinity": float("inf"),
    "-Infinity": float("-inf"),
}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Strings this short cannot exceed their byte limits (4 bytes a character at most), so need no check.
_SHORT_NAME_CHARS = MAX_NAME_BYTES // 4
_SHORT_VALUE_CHARS = MAX_ATTRIBUTE_VALUE_BYTES // 4
_NO_ATTRIBUTES: tuple[AttributePairs, TypePairs] = ([], [])


def decode_otlp_json(body: bytes) -> DecodeResult:
    """Decode an OTLP/JSON trace export request; raises ``DecodeError`` if nothing in it can be accepted."""
    try:
        return _decode(body)
    except DecodeError:
        raise
    except Problem as problem:
        raise DecodeError(problem.message()) from None
    except Exception as error:  # a decoder must answer 400, never 500, whatever it is sent
        raise unforeseen(error, "OTLP JSON") from None


def _decode(body: bytes) -> DecodeResult:
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise DecodeError(f"invalid JSON: {error}") from None
    if type(request) is not dict:
        raise DecodeError(f"expected a JSON object (ExportTraceServiceRequest), got {preview(request)}")
    resource_spans = _field(request, "resourceSpans", "resource_spans")
    builder = SpanBatchBuilder()
    total = rejected = 0
    first_problem = ""
    for r, resource_span in enumerate(_list(resource_spans, "resourceSpans")):
        where = f"resourceSpans[{r}]"
        if type(resource_span) is not dict:
            raise RequestMalformed(f"expected an object, got {preview(resource_span)}", where)
        scope_spans = _list(_scope_spans(resource_span), "scopeSpans", where)
        resource_problem = ""
        try:
            service, resource = _resource(resource_span.get("resource"))
        except Problem as problem:
            problem.at(where)
            if isinstance(problem, RequestMalformed):
                raise
            resource_problem = problem.message()
        for s, scope_span in enumerate(scope_spans):
            scope_where = f"{where}.scopeSpans[{s}]"
            if type(scope_span) is not dict:
                raise RequestMalformed(f"expected an object, got {preview(scope_span)}", scope_where)
            spans = _list(scope_span.get("spans"), "spans", scope_where)
            total += len(spans)
            if resource_problem:
                rejected += len(spans)
                first_problem = first_problem or resource_problem
                continue
            try:
                scope_name, scope_version = _scope(_scope_of(scope_span))
            except Problem as problem:
                raise problem.at(scope_where) from None
            for k, span in enumerate(spans):
                try:
                    _add_span(builder, span, service, resource, scope_name, scope_version)
                except SpanRejected as problem:
                    rejected += 1
                    if not first_problem:
                        first_problem = problem.at(f"{scope_where}.spans[{k}]").message()
                except RequestMalformed as problem:
                    raise problem.at(f"{scope_where}.spans[{k}]") from None
    return finish_batch(builder, total, rejected, first_problem)


def _field(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _scope_spans(resource_span: dict[str, Any]) -> Any:
    value = _field(resource_span, "scopeSpans", "scope_spans")
    # Exporters from before OTLP 0.15 called scopes "instrumentation libraries".
    return resource_span.get("instrumentationLibrarySpans") if value is None else value


def _scope_of(scope_span: dict[str, Any]) -> Any:
    scope = scope_span.get("scope")
    return scope_span.get("instrumentationLibrary") if scope is None else scope


def _list(value: Any, field: str, where: str = "") -> list[Any]:
    if value is None:
        return []
    if type(value) is not list:
        raise RequestMalformed(
            f"expected an array, got {preview(value)}", f"{where}.{field}" if where else field
        )
    return value


def _string(value: Any, field: str, max_bytes: int) -> str:
    if type(value) is str:
        return value if len(value) * 4 <= max_bytes else truncate_utf8(value, max_bytes)
    if value is None:
        return ""
    raise RequestMalformed(f"expected a string, got {preview(value)}", field)


def _integer(value: Any, field: str) -> int:
    """An int64/uint64 field, written as a JSON number or a decimal string; absent is 0."""
    kind = type(value)
    if kind is int:
        return cast(int, value)
    if kind is str:
        try:
            return int(value)  # also takes a few spellings protobuf would not ("1_000", " 7"): harmless
        except ValueError:
            pass
    elif value is None:
        return 0
    elif kind is float and value.is_integer():
        return int(value)
    raise RequestMalformed(f"expected an integer, got {preview(value)}", field)


def _enum(value: Any, names: dict[str, int], field: str, size: int) -> int:
    if value is None:
        return 0
    if type(value) is int:
        number = value
    elif type(value) is str and value in names:
        return names[value]
    elif type(value) is str:
        raise SpanRejected(f"unknown value {preview(value)}", field)
    else:
        raise RequestMalformed(f"expected an integer enum value, got {preview(value)}", field)
    if not 0 <= number < size:
        raise SpanRejected(f"unknown value {number}", field)
    return number


def _id_problem(value: Any, size: int) -> str:
    if type(value) is str and len(value) == 2 * size and is_zero_hex(value):
        return "all-zero id is invalid"
    if value is None:
        return "missing"
    return f"expected {2 * size} hex characters, got {preview(value)}"


def _resource(resource: Any) -> tuple[str, tuple[AttributePairs, TypePairs]]:
    if resource is None:
        return UNKNOWN_SERVICE, _NO_ATTRIBUTES
    if type(resource) is not dict:
        raise RequestMalformed(f"expected an object, got {preview(resource)}", "resource")
    try:
        attributes = _attributes(resource.get("attributes"), "attributes")
    except Problem as problem:
        raise problem.at("resource") from None
    service = dict(attributes[0]).get("service.name") or UNKNOWN_SERVICE
    return truncate_utf8(service, MAX_NAME_BYTES), attributes


def _scope(scope: Any) -> tuple[str, str]:
    if scope is None:
        return "", ""
    if type(scope) is not dict:
        raise RequestMalformed(f"expected an object, got {preview(scope)}", "scope")
    return (
        _string(scope.get("name"), "scope.name", MAX_NAME_BYTES),
        _string(scope.get("version"), "scope.version", MAX_NAME_BYTES),
    )


def _add_span(
    builder: SpanBatchBuilder,
    span: Any,
    service: str,
    resource: tuple[AttributePairs, TypePairs],
    scope_name: str,
    scope_version: str,
) -> None:
    if type(span) is not dict:
        raise RequestMalformed(f"expected a span object, got {preview(span)}")
    get = span.get

    value = get("traceId")
    if value is None:
        value = get("trace_id")
    trace_id = parse_hex_id(value, TRACE_ID_BYTES)
    if trace_id is None:
        raise SpanRejected(_id_problem(value, TRACE_ID_BYTES), "traceId")
    value = get("spanId")
    if value is None:
        value = get("span_id")
    span_id = parse_hex_id(value, SPAN_ID_BYTES)
    if span_id is None:
        raise SpanRejected(_id_problem(value, SPAN_ID_BYTES), "spanId")
    value = get("parentSpanId")
    if value is None:
        value = get("parent_span_id")
    parent_span_id = None
    if value:
        parent_span_id = parse_hex_id(value, SPAN_ID_BYTES)
        if parent_span_id is None and not is_zero_hex(value):  # an all-zero parent means a root span
            raise SpanRejected(_id_problem(value, SPAN_ID_BYTES), "parentSpanId")

    value = get("startTimeUnixNano")
    start_ns = _integer(get("start_time_unix_nano") if value is None else value, "startTimeUnixNano")
    value = get("endTimeUnixNano")
    end_ns = _integer(get("end_time_unix_nano") if value is None else value, "endTimeUnixNano")
    problem = time_problem(start_ns, end_ns)
    if problem:
        raise SpanRejected(problem, "startTimeUnixNano" if problem[0] == "s" else "endTimeUnixNano")

    name = get("name")
    if type(name) is not str:
        name = _string(name, "name", MAX_NAME_BYTES)
    elif len(name) * 4 > MAX_NAME_BYTES:
        name = truncate_utf8(name, MAX_NAME_BYTES)
    kind = get("kind")
    if type(kind) is not int or not 0 <= kind <= 5:
        kind = _enum(kind, _KIND_NAMES, "kind", len(SpanKind))

    status_code = 0
    status_message = None
    status = get("status")
    if status is not None:
        if type(status) is not dict:
            raise RequestMalformed(f"expected an object, got {preview(status)}", "status")
        status_code = _enum(status.get("code"), _STATUS_NAMES, "status.code", len(StatusCode))
        status_message = _string(status.get("message"), "status.message", MAX_ATTRIBUTE_VALUE_BYTES)

    value = get("traceState")
    if value is None:
        value = get("trace_state")
    trace_state = _string(value, "traceState", MAX_ATTRIBUTE_VALUE_BYTES) if value is not None else None

    attributes = get("attributes")
    attributes = _NO_ATTRIBUTES if attributes is None else _attributes(attributes, "attributes")
    events = get("events")
    links = get("links")

    builder.add(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        service=service,
        name=name,
        kind=kind,
        start_ns=start_ns,
        duration_ns=end_ns - start_ns,
        status_code=status_code,
        status_message=status_message,
        trace_state=trace_state,
        attributes=attributes,
        resource=resource,
        scope_name=scope_name,
        scope_version=scope_version,
        events=None if events is None else _events(events),
        links=None if links is None else _links(links),
    )


def _events(events: Any) -> list[dict[str, Any]]:
    decoded = []
    for i, event in enumerate(_list(events, "events")):
        try:
            if type(event) is not dict:
                raise RequestMalformed(f"expected an object, got {preview(event)}")
            value = event.get("timeUnixNano")
            time_ns = _integer(event.get("time_unix_nano") if value is None else value, "timeUnixNano")
            if not time_in_range(time_ns):
                raise SpanRejected(f"time {time_ns} ns is before the epoch or absurdly late", "timeUnixNano")
            attributes, attribute_types = _attributes(event.get("attributes"), "attributes")
            decoded.append(
                {
                    "time_ns": time_ns,
                    "name": _string(event.get("name"), "name", MAX_NAME_BYTES),
                    "attributes": attributes,
                    "attribute_types": attribute_types,
                }
            )
        except Problem as problem:
            raise problem.at(f"events[{i}]") from None
    return decoded


def _links(links: Any) -> list[dict[str, Any]]:
    decoded = []
    for i, link in enumerate(_list(links, "links")):
        try:
            if type(link) is not dict:
                raise RequestMalformed(f"expected an object, got {preview(link)}")
            value = _field(link, "traceId", "trace_id")
            trace_id = parse_hex_id(value, TRACE_ID_BYTES)
            if trace_id is None:
                raise SpanRejected(_id_problem(value, TRACE_ID_BYTES), "traceId")
            value = _field(link, "spanId", "span_id")
            span_id = parse_hex_id(value, SPAN_ID_BYTES)
            if span_id is None:
                raise SpanRejected(_id_problem(value, SPAN_ID_BYTES), "spanId")
            trace_state = _string(
                _field(link, "traceState", "trace_state"), "traceState", MAX_ATTRIBUTE_VALUE_BYTES
            )
            attributes, attribute_types = _attributes(link.get("attributes"), "attributes")
            decoded.append(
                {
                    "trace_id": trace_id,
                    "span_id": span_id,
                    "trace_state": trace_state or None,
                    "attributes": attributes,
                    "attribute_types": attribute_types,
                }
            )
        except Problem as problem:
            raise problem.at(f"links[{i}]") from None
    return decoded


def _attributes(items: Any, field: str) -> tuple[AttributePairs, TypePairs]:
    """A ``KeyValue`` list -> the two attribute maps (text, and type of each non-string value).

    Gives the same pairs ``builder.encode_attributes`` would. Later duplicates of a key win, empty values are
    dropped, and so are keys past the limit. Short plain strings (most attributes) take a shortcut past every
    check and conversion; anything else goes through ``_add_attribute``.
    """
    items = _list(items, field)
    texts: dict[str, str] = {}
    types: dict[str, int] = {}
    # Within the limit no key can be dropped, so the shortcut need not count.
    shortcut = len(items) <= MAX_ATTRIBUTES_PER_SPAN
    for i, item in enumerate(items):
        if shortcut and type(item) is dict:
            key = item.get("key")
            value = item.get("value")
            if type(key) is str and type(value) is dict and len(value) == 1 and len(key) <= _SHORT_NAME_CHARS:
                text = value.get("stringValue")
                if type(text) is str and len(text) <= _SHORT_VALUE_CHARS:
                    texts[key] = text
                    if types:
                        types.pop(key, None)
                    continue
                text = value.get("intValue")
                if (
                    type(text) is str
                    and text.isascii()
                    and text.isdigit()
                    and len(text) < 19
                    and text[0] != "0"
                ):
                    texts[key] = text  # already what encode_value writes for this int
                    types[key] = ValueType.INT
                    continue
        try:
            _add_attribute(item, texts, types)
        except Problem as problem:
            raise problem.at(f"{field}[{i}]") from None
    if not texts:
        return _NO_ATTRIBUTES
    if len(types) > 1 and len(texts) != len(items):
        # A repeated key moves in one map but not the other: list the types in the order of the values.
        return list(texts.items()), [(key, types[key]) for key in texts if key in types]
    return list(texts.items()), list(types.items())


def _add_attribute(item: Any, texts: dict[str, str], types: dict[str, int]) -> None:
    if type(item) is not dict:
        raise RequestMalformed(f"expected a KeyValue object, got {preview(item)}")
    key = item.get("key")
    if type(key) is not str:
        raise RequestMalformed(f"expected a string, got {preview(key)}", "key")
    key = truncate_utf8(key, MAX_NAME_BYTES)
    if len(texts) >= MAX_ATTRIBUTES_PER_SPAN and key not in texts:
        return
    value = item.get("value")
    value = None if value is None else _any_value(value, 0)
    if value is None:
        return
    text, value_type = encode_value(value)
    texts[key] = text
    if value_type != ValueType.STRING:
        types[key] = value_type
    else:
        types.pop(key, None)


def _any_value(any_value: Any, depth: int) -> Any:
    """An ``AnyValue`` object -> str, bool, int, float, bytes, list or dict (None when no value is set).

    ``depth`` counts the arrays and kvlists around this value; recursion stops at ``MAX_NESTING_DEPTH``, so
    hostile nesting costs at most that many frames.
    """
    if type(any_value) is not dict:
        raise RequestMalformed(f"expected an AnyValue object, got {preview(any_value)}", "value")
    for field, value in any_value.items():
        kind = _ANY_VALUE_FIELDS.get(field)
        if kind is None or value is None:
            continue  # unknown fields are ignored, null is the same as absent
        try:
            if kind == _STRING:
                if type(value) is not str:
                    raise RequestMalformed(f"expected a string, got {preview(value)}")
                if len(value) * 4 > MAX_ATTRIBUTE_VALUE_BYTES:
                    return truncate_utf8(value, MAX_ATTRIBUTE_VALUE_BYTES)
                return value
            if kind == _BOOL:
                if type(value) is not bool:
                    raise RequestMalformed(f"expected true or false, got {preview(value)}")
                return value
            if kind == _INT:
                number = _integer(value, "")
                if not _INT64_MIN <= number <= _INT64_MAX:
                    raise SpanRejected(f"{number} is outside the int64 range")
                return number
            if kind == _DOUBLE:
                return _double(value)
            if kind == _BYTES:
                return _bytes(value)
            if depth >= MAX_NESTING_DEPTH:
                raise SpanRejected(f"arrays and kvlists are nested deeper than {MAX_NESTING_DEPTH} levels")
            if type(value) is not dict:
                raise RequestMalformed(f"expected an object, got {preview(value)}")
            if kind == _ARRAY:
                return _array(value.get("values"), depth + 1)
            return _kvlist(value.get("values"), depth + 1)
        except Problem as problem:
            raise problem.at(f"value.{field}") from None
    return None


def _double(value: Any) -> float:
    kind = type(value)
    if kind is float:
        return cast(float, value)
    if kind is int:
        return float(value)
    if kind is str:
        special = _SPECIAL_DOUBLES.get(value)
        if special is not None:
            return special
        try:
            return float(value)
        except ValueError:
            pass
    raise RequestMalformed(f"expected a number, got {preview(value)}")


def _bytes(value: Any) -> bytes:
    if type(value) is not str:
        raise RequestMalformed(f"expected a base64 string, got {preview(value)}")
    # Protobuf's JSON mapping accepts standard and URL-safe base64, padded or not.
    text = value.replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SpanRejected(f"invalid base64 {preview(value)}") from None
    return raw[:MAX_ATTRIBUTE_VALUE_BYTES]


def _array(values: Any, depth: int) -> list[Any]:
    decoded = []
    for i, element in enumerate(_list(values, "values")):
        try:
            decoded.append(_nested(_any_value(element, depth)))
        except Problem as problem:
            raise problem.at(f"values[{i}]") from None
    return decoded


def _kvlist(values: Any, depth: int) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for i, item in enumerate(_list(values, "values")):
        try:
            if type(item) is not dict:
                raise RequestMalformed(f"expected a KeyValue object, got {preview(item)}")
            key = item.get("key")
            if type(key) is not str:
                raise RequestMalformed(f"expected a string, got {preview(key)}", "key")
            value = item.get("value")
            decoded[key] = None if value is None else _nested(_any_value(value, depth))
        except Problem as problem:
            raise problem.at(f"values[{i}]") from None
    return decoded


def _nested(value: Any) -> Any:
    # Inside arrays and kvlists the value is kept as JSON, where bytes are written as base64 (as OTLP does).
    if type(value) is bytes:
        return base64.b64encode(value).decode("ascii")
    return value

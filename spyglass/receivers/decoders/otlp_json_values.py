"""What the OTLP/JSON decoders of spans (``otlp_json``) and of logs (``otlp_logs``) read alike: fields under
either spelling, arrays, strings, integers, ids, the walk down to each scope's items, the resource, the scope,
attribute lists and ``AnyValue``s.

The OTLP JSON encoding is the protobuf JSON mapping with two exceptions: trace and span ids are hex, not base64,
and enums are integers (names are accepted too, as protobuf's own parser does). 64-bit integers may be strings
or numbers, and both the lowerCamelCase and the proto snake_case field names are accepted.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from typing import Any, NamedTuple, cast

from spyglass.model.attributes import encode_value
from spyglass.model.builder import AttributePairs, TypePairs
from spyglass.model.schema import UNKNOWN_SERVICE, ValueType
from spyglass.receivers.decoders.limits import (
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES_PER_SPAN,
    MAX_NAME_BYTES,
    MAX_NESTING_DEPTH,
    SHORT_NAME_CHARS,
    SHORT_VALUE_CHARS,
    is_zero_hex,
    preview,
    truncate_utf8,
)
from spyglass.receivers.decoders.result import Problem, RequestMalformed, SpanRejected

__all__ = [
    "NO_ATTRIBUTES",
    "ScopeItems",
    "as_integer",
    "as_list",
    "as_string",
    "get_field",
    "id_problem",
    "parse_any_value",
    "parse_attributes",
    "parse_scope",
    "request_scopes",
]

#: The attribute maps of a span, resource or record without attributes (shared: nothing appends to them).
NO_ATTRIBUTES: tuple[AttributePairs, TypePairs] = ([], [])

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
_SPECIAL_DOUBLES: dict[str, float] = {
    "NaN": float("nan"),
    "Infinity": float("inf"),
    "-Infinity": float("-inf"),
}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def get_field(obj: dict[str, Any], camel: str, snake: str) -> Any:
    """The field spelled ``camel`` (as OTLP JSON writes it), else ``snake`` (as the proto names it)."""
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def as_list(value: Any, field: str, where: str = "") -> list[Any]:
    """An array field; absent is empty."""
    if value is None:
        return []
    if type(value) is not list:
        raise RequestMalformed(
            f"expected an array, got {preview(value)}", f"{where}.{field}" if where else field
        )
    return value


def as_string(value: Any, field: str, max_bytes: int) -> str:
    """A string field cut to ``max_bytes``; absent is empty."""
    if type(value) is str:
        return value if len(value) * 4 <= max_bytes else truncate_utf8(value, max_bytes)
    if value is None:
        return ""
    raise RequestMalformed(f"expected a string, got {preview(value)}", field)


def as_integer(value: Any, field: str) -> int:
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


def id_problem(value: Any, size: int) -> str:
    """Why ``value`` is not an id of ``size`` bytes (for a value ``parse_hex_id`` refused)."""
    if type(value) is str and len(value) == 2 * size and is_zero_hex(value):
        return "all-zero id is invalid"
    if value is None:
        return "missing"
    return f"expected {2 * size} hex characters, got {preview(value)}"


class ScopeItems(NamedTuple):
    """One scope's items (spans or log records) in an OTLP JSON request, and what its resource says of them."""

    where: str  # the scope's path, for messages: "resourceSpans[0].scopeSpans[1]"
    scope: dict[str, Any]  # the ScopeSpans (or ScopeLogs) object
    items: list[Any]
    service: str
    resource: tuple[AttributePairs, TypePairs]
    resource_problem: str  # why the resource rejects all its items, or ""


def request_scopes(
    request: dict[str, Any], resources: tuple[str, ...], scopes: tuple[str, ...], items: tuple[str, ...]
) -> Iterator[ScopeItems]:
    """Walk an OTLP JSON request down to each scope, checking the shape on the way (``RequestMalformed``).

    ``resources``, ``scopes`` and ``items`` are the field names of the three levels, the first that is set
    wins; the first name is the one paths in messages use. A resource that rejects its items (runaway
    nesting, say) does not stop the walk: its scopes come with the reason, for the caller to count.
    """
    for r, resource_object in enumerate(as_list(_first_set(request, resources), resources[0])):
        where = f"{resources[0]}[{r}]"
        if type(resource_object) is not dict:
            raise RequestMalformed(f"expected an object, got {preview(resource_object)}", where)
        scope_objects = as_list(_first_set(resource_object, scopes), scopes[0], where)
        service, resource, resource_problem = "", NO_ATTRIBUTES, ""
        try:
            service, resource = _parse_resource(resource_object.get("resource"))
        except Problem as problem:
            problem.at(where)
            if isinstance(problem, RequestMalformed):
                raise
            resource_problem = problem.message()
        for s, scope in enumerate(scope_objects):
            scope_where = f"{where}.{scopes[0]}[{s}]"
            if type(scope) is not dict:
                raise RequestMalformed(f"expected an object, got {preview(scope)}", scope_where)
            scope_items = as_list(_first_set(scope, items), items[0], scope_where)
            yield ScopeItems(scope_where, scope, scope_items, service, resource, resource_problem)


def _first_set(obj: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = obj.get(name)
        if value is not None:
            return value
    return None


def _parse_resource(resource: Any) -> tuple[str, tuple[AttributePairs, TypePairs]]:
    """A ``Resource`` object -> its service name (``UNKNOWN_SERVICE`` without one) and its attribute maps."""
    if resource is None:
        return UNKNOWN_SERVICE, NO_ATTRIBUTES
    if type(resource) is not dict:
        raise RequestMalformed(f"expected an object, got {preview(resource)}", "resource")
    try:
        attributes = parse_attributes(resource.get("attributes"), "attributes")
    except Problem as problem:
        raise problem.at("resource") from None
    service = dict(attributes[0]).get("service.name") or UNKNOWN_SERVICE
    return truncate_utf8(service, MAX_NAME_BYTES), attributes


def parse_scope(scope: Any) -> tuple[str, str]:
    """An ``InstrumentationScope`` object -> its name and version (empty when absent)."""
    if scope is None:
        return "", ""
    if type(scope) is not dict:
        raise RequestMalformed(f"expected an object, got {preview(scope)}", "scope")
    return (
        as_string(scope.get("name"), "scope.name", MAX_NAME_BYTES),
        as_string(scope.get("version"), "scope.version", MAX_NAME_BYTES),
    )


def parse_attributes(items: Any, field: str) -> tuple[AttributePairs, TypePairs]:
    """A ``KeyValue`` list -> the two attribute maps (text, and type of each non-string value).

    Gives the same pairs ``builder.encode_attributes`` would. Later duplicates of a key win, empty values are
    dropped, and so are keys past the limit. Short plain strings (most attributes) take a shortcut past every
    check and conversion; anything else goes through ``_add_attribute``.
    """
    items = as_list(items, field)
    texts: dict[str, str] = {}
    types: dict[str, int] = {}
    # Within the limit no key can be dropped, so the shortcut need not count.
    shortcut = len(items) <= MAX_ATTRIBUTES_PER_SPAN
    for i, item in enumerate(items):
        if shortcut and type(item) is dict:
            key = item.get("key")
            value = item.get("value")
            if type(key) is str and type(value) is dict and len(value) == 1 and len(key) <= SHORT_NAME_CHARS:
                text = value.get("stringValue")
                if type(text) is str and len(text) <= SHORT_VALUE_CHARS:
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
        return NO_ATTRIBUTES
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
    value = None if value is None else parse_any_value(value, 0)
    if value is None:
        return
    text, value_type = encode_value(value)
    texts[key] = text
    if value_type != ValueType.STRING:
        types[key] = value_type
    else:
        types.pop(key, None)


def parse_any_value(any_value: Any, depth: int) -> Any:
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
                number = as_integer(value, "")
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
    for i, element in enumerate(as_list(values, "values")):
        try:
            decoded.append(_nested(parse_any_value(element, depth)))
        except Problem as problem:
            raise problem.at(f"values[{i}]") from None
    return decoded


def _kvlist(values: Any, depth: int) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for i, item in enumerate(as_list(values, "values")):
        try:
            if type(item) is not dict:
                raise RequestMalformed(f"expected a KeyValue object, got {preview(item)}")
            key = item.get("key")
            if type(key) is not str:
                raise RequestMalformed(f"expected a string, got {preview(key)}", "key")
            value = item.get("value")
            decoded[key] = None if value is None else _nested(parse_any_value(value, depth))
        except Problem as problem:
            raise problem.at(f"values[{i}]") from None
    return decoded


def _nested(value: Any) -> Any:
    # Inside arrays and kvlists the value is kept as JSON, where bytes are written as base64 (as OTLP does).
    if type(value) is bytes:
        return base64.b64encode(value).decode("ascii")
    return value

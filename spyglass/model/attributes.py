"""Typed attribute values <-> the text-plus-type form kept in span batches (see ``schema``)."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from spyglass.model.schema import ValueType


def encode_value(value: Any) -> tuple[str, int]:
    """Return ``(text, type)`` for a plain Python value (str, bool, int, float, list, dict, bytes)."""
    if isinstance(value, str):
        return value, ValueType.STRING
    if isinstance(value, bool):
        return ("true" if value else "false"), ValueType.BOOL
    if isinstance(value, int):
        return str(value), ValueType.INT
    if isinstance(value, float):
        return repr(value), ValueType.DOUBLE
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii"), ValueType.BYTES
    if isinstance(value, list | tuple):
        return orjson.dumps(list(value), default=_bytes_as_base64).decode(), ValueType.ARRAY
    if isinstance(value, dict):
        return orjson.dumps(value, default=_bytes_as_base64).decode(), ValueType.KVLIST
    return str(value), ValueType.STRING


def _bytes_as_base64(value: Any) -> str:
    """orjson cannot write bytes nested in arrays or kvlists; OTLP JSON writes them as base64."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"cannot encode {type(value).__name__} as an attribute value")


def decode_value(text: str, value_type: int) -> Any:
    """Give back the JSON-typed value of an attribute kept as text."""
    if value_type == ValueType.STRING:
        return text
    if value_type == ValueType.BOOL:
        return text == "true"
    if value_type == ValueType.INT:
        return int(text)
    if value_type == ValueType.DOUBLE:
        number = float(text)
        # JSON has no NaN or infinity: keep those as their text.
        return number if number == number and abs(number) != float("inf") else text
    if value_type in (ValueType.ARRAY, ValueType.KVLIST):
        return orjson.loads(text)
    return text  # bytes stay base64 text, as OTLP JSON writes them


def typed_attributes(
    values: list[tuple[str, str]] | None, types: list[tuple[str, int]] | None
) -> dict[str, Any]:
    """Turn the two Arrow maps (as ``to_pylist`` gives them) into one JSON-typed dict."""
    if not values:
        return {}
    type_of = dict(types) if types else {}
    return {key: decode_value(text, type_of.get(key, ValueType.STRING)) for key, text in values}

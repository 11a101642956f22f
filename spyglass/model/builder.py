"""Row-at-a-time construction of span batches, for the decoders of JSON formats.

JSON decoders must touch every span from Python anyway; this builder keeps that touch to appending to a few
lists, and turns them into Arrow arrays once per request.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from spyglass.model.attributes import encode_value
from spyglass.model.schema import SPAN_SCHEMA, ValueType

AttributePairs = list[tuple[str, str]]
TypePairs = list[tuple[str, int]]


def encode_attributes(items: Iterable[tuple[str, Any]]) -> tuple[AttributePairs, TypePairs]:
    """Split ``(key, python value)`` pairs into the text map and the (non-string) type map."""
    values: AttributePairs = []
    types: TypePairs = []
    for key, value in items:
        text, value_type = encode_value(value)
        values.append((key, text))
        if value_type != ValueType.STRING:
            types.append((key, value_type))
    return values, types


class SpanBatchBuilder:
    """Collects spans column by column and finishes them into one ``SPAN_SCHEMA`` record batch."""

    def __init__(self) -> None:
        self._columns: dict[str, list[Any]] = {name: [] for name in SPAN_SCHEMA.names}

    def __len__(self) -> int:
        return len(self._columns["trace_id"])

    def add(
        self,
        *,
        trace_id: bytes,
        span_id: bytes,
        parent_span_id: bytes | None,
        service: str,
        name: str,
        kind: int,
        start_ns: int,
        duration_ns: int,
        status_code: int = 0,
        status_message: str | None = None,
        trace_state: str | None = None,
        attributes: tuple[AttributePairs, TypePairs] = ([], []),
        resource: tuple[AttributePairs, TypePairs] = ([], []),
        scope_name: str | None = None,
        scope_version: str | None = None,
        events: list[dict[str, Any]] | None = None,
        links: list[dict[str, Any]] | None = None,
    ) -> None:
        """Append one span; events and links are dicts shaped like ``schema.EVENT`` / ``schema.LINK``."""
        c = self._columns
        c["trace_id"].append(trace_id)
        c["span_id"].append(span_id)
        c["parent_span_id"].append(parent_span_id)
        c["trace_state"].append(trace_state or None)
        c["service"].append(service)
        c["name"].append(name)
        c["kind"].append(kind)
        c["start_ns"].append(start_ns)
        c["duration_ns"].append(duration_ns)
        c["status_code"].append(status_code)
        c["status_message"].append(status_message or None)
        c["attributes"].append(attributes[0])
        c["attribute_types"].append(attributes[1])
        c["resource"].append(resource[0])
        c["resource_types"].append(resource[1])
        c["scope_name"].append(scope_name or None)
        c["scope_version"].append(scope_version or None)
        c["events"].append(events or [])
        c["links"].append(links or [])

    def finish(self) -> pa.RecordBatch:
        """Build the record batch (one Arrow conversion per column)."""
        arrays = [pa.array(self._columns[f.name], type=f.type) for f in SPAN_SCHEMA]
        return pa.RecordBatch.from_arrays(arrays, schema=SPAN_SCHEMA)

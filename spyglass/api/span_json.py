"""Arrow spans -> the JSON shapes of the API (``Span`` of the API reference). Output-side only, so per-span
Python is fine."""

from __future__ import annotations

from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.attributes import typed_attributes
from spyglass.model.schema import KIND_NAMES, STATUS_NAMES
from spyglass.model.span_order import FEW_SPANS, by_start


def hex_id(value: bytes | None) -> str | None:
    return value.hex() if value is not None else None


def parse_trace_id(text: str) -> bytes | None:
    """A 32-hex trace id (16-hex ids, as 64-bit Zipkin and Jaeger send them, are zero-padded); None if bad."""
    text = text.strip().lower()
    if len(text) == 16:
        text = "0" * 16 + text
    if len(text) != 32:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


_DEDUPE_KEYS = ["span_id", "service", "kind", "start_ns"]


def distinct_spans(table: pa.Table) -> pa.Table:
    """Each span once (by id, service, kind and start: retried exports can repeat spans), ordered by start time
    then span id; in Arrow, so a big trace is never turned into Python rows whole."""
    if table.num_rows == 0:
        return table
    ordered = by_start(table)
    if ordered.num_rows < FEW_SPANS and not any(ordered.column(k).null_count for k in _DEDUPE_KEYS):
        return _first_of_each_few(ordered)
    keys = ordered.select(_DEDUPE_KEYS).append_column("_row", pa.array(range(ordered.num_rows), pa.int64()))
    first = keys.group_by(_DEDUPE_KEYS, use_threads=False).aggregate([("_row", "min")]).column("_row_min")
    if len(first) == ordered.num_rows:
        return ordered
    return ordered.take(pc.take(first, pc.sort_indices(first)))  # the first rows themselves, in order


def _first_of_each_few(ordered: pa.Table) -> pa.Table:
    """The first of each span among a few ordered ones, in Python (an Arrow group-by and take cost half a
    millisecond whatever the size); the table itself when no span repeats, as mostly."""
    keys = list(zip(*(ordered.column(name).to_pylist() for name in _DEDUPE_KEYS), strict=True))
    seen: set[tuple[Any, ...]] = set()
    rows = []
    for row, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            rows.append(row)
    if len(rows) == ordered.num_rows:
        return ordered
    return ordered.take(pa.array(rows, pa.int64()))


def span_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Distinct spans of a table as Python rows, ordered by start time (``distinct_spans``)."""
    return cast("list[dict[str, Any]]", distinct_spans(table).to_pylist())


def span_to_json(row: dict[str, Any]) -> dict[str, Any]:
    """One span row in the API reference's ``Span`` shape."""
    return {
        "trace_id": hex_id(row["trace_id"]),
        "span_id": hex_id(row["span_id"]),
        "parent_span_id": hex_id(row["parent_span_id"]),
        "service": row["service"],
        "name": row["name"],
        "kind": KIND_NAMES.get(row["kind"], "internal"),
        "start_ns": row["start_ns"],
        "duration_ns": row["duration_ns"],
        "status": STATUS_NAMES.get(row["status_code"], "unset"),
        "status_message": row["status_message"] or "",
        "attributes": typed_attributes(row["attributes"], row["attribute_types"]),
        "resource": typed_attributes(row["resource"], row["resource_types"]),
        "scope": {"name": row["scope_name"] or "", "version": row["scope_version"] or ""},
        "trace_state": row["trace_state"] or "",
        "events": [
            {
                "name": event["name"],
                "time_ns": event["time_ns"],
                "attributes": typed_attributes(event["attributes"], event["attribute_types"]),
            }
            for event in row["events"] or []
        ],
        "links": [
            {
                "trace_id": hex_id(link["trace_id"]),
                "span_id": hex_id(link["span_id"]),
                "trace_state": link["trace_state"] or "",
                "attributes": typed_attributes(link["attributes"], link["attribute_types"]),
            }
            for link in row["links"] or []
        ],
    }


def summary_to_json(row: dict[str, Any]) -> dict[str, Any]:
    """One ``find_traces`` row in the API reference's trace-search shape."""
    return {
        "trace_id": hex_id(row["trace_id"]),
        "root_service": row["root_service"],
        "root_operation": row["root_operation"],
        "start_ns": row["start_ns"],
        "duration_ns": row["duration_ns"],
        "span_count": row["span_count"],
        "error": row["error_count"] > 0,
        "sample_weight": row["sample_weight"],
    }

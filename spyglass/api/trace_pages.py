"""One trace's spans without building one giant answer: distinct spans in Arrow, pages of the API reference's
``Span`` objects, a JSON stream of them for big traces, and a compact columnar form the waterfall draws from.

A 100,000-span trace is about 40 MB as ``Span`` objects; turned into Python dicts at once it costs seconds and
hundreds of MB. Everything here slices the Arrow table and converts one slice at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.api.span_json import span_to_json
from spyglass.model.schema import KIND_NAMES, STATUS_NAMES

#: Above this many spans the plain answer is streamed, one slice of spans after another.
STREAM_ABOVE_SPANS = 5_000
#: Spans converted to ``Span`` objects per slice of a stream.
STREAM_SLICE_SPANS = 2_000
#: Largest ``limit`` of one page.
MAX_PAGE_SPANS = 10_000


def span_objects(spans: pa.Table) -> list[dict[str, Any]]:
    """A slice of distinct spans as ``Span`` objects of the API reference."""
    return [span_to_json(row) for row in spans.to_pylist()]


def stream_trace(trace_id: bytes, spans: pa.Table) -> Iterator[bytes]:
    """``{"trace_id", "spans": [...]}`` written slice by slice: the same JSON as the whole answer, never held
    whole in memory."""
    yield b'{"trace_id":' + orjson.dumps(trace_id.hex()) + b',"spans":['
    for offset in range(0, spans.num_rows, STREAM_SLICE_SPANS):
        objects = span_objects(spans.slice(offset, STREAM_SLICE_SPANS))
        body = orjson.dumps(objects, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
        yield body if offset == 0 else b"," + body
    yield b"]}"


def trace_page(trace_id: bytes, spans: pa.Table, offset: int, limit: int) -> dict[str, Any]:
    """One page of the trace's spans in start order, and where the next page starts (null after the last)."""
    page = spans.slice(offset, limit)
    end = offset + page.num_rows
    return {
        "trace_id": trace_id.hex(),
        "span_count": spans.num_rows,
        "offset": offset,
        "next_offset": end if end < spans.num_rows else None,
        "spans": span_objects(page),
    }


def trace_columns(trace_id: bytes, spans: pa.Table, spans_up_to: int = 0) -> dict[str, Any]:
    """What a waterfall needs of every span, one JSON list per column (about 70 bytes per span against
    about 400 as ``Span`` objects): string columns as indices into ``dictionaries``, parents as row indices
    (-1: a root, -2: a parent the trace does not hold), starts as offsets from the trace's first start so they
    stay exact in JavaScript numbers. When the trace has at most ``spans_up_to`` spans the full ``Span``
    objects come along in ``spans`` (same order), so a small trace takes one request."""
    n = spans.num_rows
    t0 = int(pc.min(spans.column("start_ns")).as_py())
    span_ids = spans.column("span_id").combine_chunks()
    parents = spans.column("parent_span_id").combine_chunks()
    found = pc.index_in(parents, value_set=span_ids)
    parent_index = pc.if_else(pc.is_null(parents), -1, pc.fill_null(found, -2))
    columns: dict[str, Any] = {
        "span_id": [value.hex() for value in span_ids.to_pylist()],
        "parent_index": parent_index.to_pylist(),
        "start_offset_ns": pc.subtract(spans.column("start_ns"), t0).to_pylist(),
        "duration_ns": spans.column("duration_ns").to_pylist(),
    }
    dictionaries: dict[str, list[str]] = {}
    names = {"kind": KIND_NAMES, "status": STATUS_NAMES}
    for column in ("service", "name", "kind", "status_code"):
        encoded = pc.dictionary_encode(spans.column(column)).combine_chunks()
        key = "status" if column == "status_code" else column
        values = encoded.dictionary.to_pylist()
        if key in names:
            default = "internal" if key == "kind" else "unset"
            values = [names[key].get(value, default) for value in values]
        dictionaries[key] = ["" if value is None else value for value in values]
        columns[key] = encoded.indices.to_pylist()
    answer: dict[str, Any] = {
        "trace_id": trace_id.hex(),
        "span_count": n,
        "start_ns": t0,
        "dictionaries": dictionaries,
        "columns": columns,
    }
    if n <= spans_up_to:
        answer["spans"] = span_objects(spans)
    return answer

"""Synthetic span batches for unit tests of the satellite (no server needed)."""

from __future__ import annotations

import os

import pyarrow as pa

from spyglass.demo.synthetic import synthetic_traffic
from spyglass.model.builder import SpanBatchBuilder, encode_attributes

__all__ = ["in_traces", "synthetic_traffic", "trace_batch"]


def trace_batch(
    traces: int,
    spans_per_trace: int = 3,
    service: str = "svc",
    error: bool = False,
    start_ns: int = 1_700_000_000_000_000_000,
) -> tuple[pa.RecordBatch, list[bytes]]:
    """A batch holding ``traces`` whole traces (a root and its children); returns the trace ids too."""
    builder = SpanBatchBuilder()
    trace_ids = []
    for t in range(traces):
        trace_id = os.urandom(16)
        trace_ids.append(trace_id)
        root = os.urandom(8)
        for s in range(spans_per_trace):
            builder.add(
                trace_id=trace_id,
                span_id=root if s == 0 else os.urandom(8),
                parent_span_id=None if s == 0 else root,
                service=service,
                name="root" if s == 0 else f"child{s}",
                kind=2 if s == 0 else 3,
                start_ns=start_ns + t * 1000 + s,
                duration_ns=1_000_000 // (s + 1),
                status_code=2 if error else 0,
                attributes=encode_attributes([("n", s), ("tier", "gold")]),
            )
    return builder.finish(), trace_ids


def in_traces(spans: pa.RecordBatch, trace_ids: list[bytes]) -> pa.RecordBatch:
    """The same spans moved into the given traces, one id per span: late spans of traces sent before."""
    at = spans.schema.get_field_index("trace_id")
    return spans.set_column(at, spans.schema.field(at), pa.array(trace_ids, spans.schema.field(at).type))

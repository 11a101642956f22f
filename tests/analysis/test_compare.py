"""Comparing traces: what ran more, what took longer, what the slow ones carried; differences first."""

from __future__ import annotations

import pyarrow as pa

from spyglass.analysis.compare import compare_traces
from spyglass.model.builder import SpanBatchBuilder, encode_attributes


def _trace(builder: SpanBatchBuilder, trace: int, db_calls: int, db_ms: int, version: str) -> None:
    trace_id = trace.to_bytes(16, "big")
    root = (trace * 1000).to_bytes(8, "big")
    total = db_calls * db_ms + 5
    builder.add(
        trace_id=trace_id,
        span_id=root,
        parent_span_id=None,
        service="checkout",
        name="POST /checkout",
        kind=2,
        start_ns=0,
        duration_ns=total * 1_000_000,
        resource=encode_attributes([("service.version", version)]),
    )
    for call in range(db_calls):
        builder.add(
            trace_id=trace_id,
            span_id=(trace * 1000 + call + 1).to_bytes(8, "big"),
            parent_span_id=root,
            service="checkout",
            name="SELECT item",
            kind=3,
            start_ns=call * db_ms * 1_000_000,
            duration_ns=db_ms * 1_000_000,
            attributes=encode_attributes([("db.system", "postgresql")]),
        )


def test_sets_of_traces_side_by_side() -> None:
    fast, slow = SpanBatchBuilder(), SpanBatchBuilder()
    for trace in range(4):
        _trace(fast, trace + 1, db_calls=2, db_ms=3, version="1.0")
        _trace(slow, trace + 100, db_calls=20, db_ms=3, version="1.1")
    result = compare_traces(pa.Table.from_batches([fast.finish()]), pa.Table.from_batches([slow.finish()]))
    assert (result["a"]["traces"], result["b"]["traces"]) == (4, 4)
    top = result["operations"][0]
    assert (top["service"], top["operation"]) == ("checkout", "SELECT item")
    assert top["a"]["calls_per_trace"] == 2 and top["b"]["calls_per_trace"] == 20
    assert top["difference"]["own_ms_per_trace"] == 54.0
    root = next(r for r in result["operations"] if r["operation"] == "POST /checkout")
    assert root["a"]["own_ms_per_trace"] == root["b"]["own_ms_per_trace"] == 5.0
    versions = {(r["value"], r["a"], r["b"]) for r in result["attributes"] if r["key"] == "service.version"}
    assert versions == {("1.0", 1.0, 0.0), ("1.1", 0.0, 1.0)}
    assert all(r["key"] != "db.system" for r in result["attributes"])  # the same on both sides: no difference

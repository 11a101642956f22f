"""Own time: parallel children cover their overlap once, children are clipped to their parent."""

from __future__ import annotations

import pyarrow as pa

from spyglass.analysis.self_time import with_self_time
from spyglass.model.builder import SpanBatchBuilder

TRACE = b"\x01" * 16


def _trace(*spans: tuple[int, int | None, int, int]) -> pa.Table:
    builder = SpanBatchBuilder()
    for span, parent, start, end in spans:
        builder.add(
            trace_id=TRACE,
            span_id=bytes([span]) * 8,
            parent_span_id=bytes([parent]) * 8 if parent is not None else None,
            service="s",
            name=f"op{span}",
            kind=1,
            start_ns=start,
            duration_ns=end - start,
        )
    return pa.Table.from_batches([builder.finish()])


def test_overlapping_children_and_clipping() -> None:
    # root 0..100; children 10..40 and 30..60 overlap (cover 10..60); child 90..130 outlives the root.
    table = with_self_time(
        _trace((1, None, 0, 100), (2, 1, 10, 40), (3, 1, 30, 60), (4, 1, 90, 130), (5, 2, 15, 20))
    )
    own = {row["name"]: row["self_ns"] for row in table.to_pylist()}
    assert own == {"op1": 100 - 50 - 10, "op2": 30 - 5, "op3": 30, "op4": 40, "op5": 5}

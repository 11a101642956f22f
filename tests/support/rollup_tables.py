"""Synthetic rollup rows, and a ``RollupReader`` over them that answers as the store and the aggregator do
(rows overlapping the window, merged into ``resolution_s`` buckets when asked), counting what it was asked."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from spyglass.model.rollups import ROLLUP_SCHEMA, concat_rollups, filter_rollups, merge_rollups
from spyglass.model.sketch import bucket_index
from spyglass.store.protocol import RollupQuery

SECOND_NS = 10**9
MINUTE_NS = 60 * SECOND_NS
HOUR_NS = 60 * MINUTE_NS
DAY_NS = 24 * HOUR_NS


def bin_of(duration_ms: float) -> int:
    """The sketch bin a duration falls in."""
    return int(bucket_index([duration_ms * 1e6])[0])


def rollup_rows(
    *cells: tuple[int, float, int, int],
    service: str = "shop",
    operation: str = "GET /checkout",
    bucket_s: int = 10,
    kind: int = 2,
) -> pa.Table:
    """Base rollup rows from ``(bucket_start_ns, duration_ms, count, errors)`` cells (the duration's bin), of
    SERVER spans unless ``kind`` says otherwise."""
    return pa.Table.from_pylist(
        [
            {
                "bucket_start_ns": start - start % (bucket_s * SECOND_NS),
                "bucket_s": bucket_s,
                "service": service,
                "operation": operation,
                "kind": kind,
                "attr_key": "",
                "attr_value": "",
                "bin": bin_of(duration_ms),
                "count": count,
                "errors": errors,
            }
            for start, duration_ms, count, errors in cells
        ],
        schema=ROLLUP_SCHEMA,
    )


@dataclass
class TableRollups:
    """A ``RollupReader`` over an in-memory table of rollup rows (append with ``add``)."""

    rows: pa.Table = field(default_factory=ROLLUP_SCHEMA.empty_table)
    queries: list[RollupQuery] = field(default_factory=list)
    first_span_ns: int | None = None
    attribute_keys: tuple[str, ...] = ()
    bucket_s: int = 10
    attribute_bucket_s: int = 60

    def add(self, rows: pa.Table) -> None:
        self.rows = concat_rollups([self.rows, rows])

    def read(self, query: RollupQuery) -> pa.Table:
        self.queries.append(query)
        rows = filter_rollups(
            self.rows,
            query.start_ns,
            query.end_ns,
            service=query.service,
            operation=query.operation,
            attr_key=query.attr_key or "",
        )
        if query.resolution_s is not None and rows.num_rows:
            width = query.resolution_s * SECOND_NS
            floored = [start - start % width for start in rows.column("bucket_start_ns").to_pylist()]
            rows = rows.set_column(0, "bucket_start_ns", pa.array(floored, pa.int64()))
            rows = rows.set_column(1, "bucket_s", pa.array([query.resolution_s] * rows.num_rows, pa.int32()))
        return merge_rollups(rows)

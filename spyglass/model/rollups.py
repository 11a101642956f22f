"""The shapes of what the store keeps besides spans: trace summaries, and rollups of 100% of spans. Shared
vocabulary: the aggregator writes rollups, stores keep them, analysis and the API read them."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.schema import of_kinds

#: One row per trace, as ``find_traces`` returns them.
TRACE_SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("trace_id", pa.binary(16), nullable=False),
        pa.field("root_service", pa.string()),  # null while the root span has not been seen
        pa.field("root_operation", pa.string()),
        pa.field("start_ns", pa.int64(), nullable=False),  # earliest span start
        pa.field("duration_ns", pa.int64(), nullable=False),  # latest span end - earliest span start
        pa.field("span_count", pa.int64(), nullable=False),
        pa.field("error_count", pa.int64(), nullable=False),
        pa.field("sample_weight", pa.float64(), nullable=False),
    ]
)

#: The aggregator's buckets: base rows (service, operation, kind) per 10 s, attribute rows per minute.
BASE_BUCKET_S = 10
ATTRIBUTE_BUCKET_S = 60

#: Reads that sum a window whole sum it in a step of a multiple of this, which a store may answer from rows
#: it keeps per ten minutes (the DuckDB store's ``coarse_rollups``). It divides the hour and the day.
COARSE_ROLLUP_S = 600

#: Aggregates of 100% of spans, as the satellite's aggregator emits them and the store keeps them. One row is
#: one latency-sketch bin of one group in one time bucket; the group's count and errors are the sums over its
#: rows, its quantiles come from its ``(bin, count)`` pairs (``spyglass.model.sketch``). Rows with the same
#: key are merged by summing ``count`` and ``errors``, so writers may append partial rows freely.
#:
#: Base rows (``attr_key == ""``) group by ``(bucket, service, operation, kind)`` in 10 s buckets; attribute
#: rows group by ``(bucket, service, operation, kind, attr_key, attr_value)`` in 60 s buckets, for the
#: attributes that explain (``service.version``, ``host.name``...), with rare values folded into ``__other__``.
#: Long (one row per bin) rather than a list column per group: merging and windowed sums are plain SQL
#: ``GROUP BY``/``sum`` in every backend, and on disk a row costs a few bytes once columns are compressed.
ROLLUP_SCHEMA = pa.schema(
    [
        pa.field("bucket_start_ns", pa.int64(), nullable=False),  # span start, floored to the bucket
        pa.field("bucket_s", pa.int32(), nullable=False),
        pa.field("service", pa.string(), nullable=False),
        pa.field("operation", pa.string(), nullable=False),  # span name
        pa.field("kind", pa.int8(), nullable=False),
        pa.field("attr_key", pa.string(), nullable=False),  # "" for the base rollup
        pa.field("attr_value", pa.string(), nullable=False),  # "" for the base rollup
        pa.field("bin", pa.int16(), nullable=False),  # latency sketch bin of the spans' durations
        pa.field("count", pa.int64(), nullable=False),
        pa.field("errors", pa.int64(), nullable=False),  # spans with status code ERROR
    ]
)
#: The columns that identify a rollup row; rows agreeing on all of them are merged by summing.
ROLLUP_KEY = ROLLUP_SCHEMA.names[:8]


def concat_rollups(tables: list[pa.Table]) -> pa.Table:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return ROLLUP_SCHEMA.empty_table()
    return pa.concat_tables(tables).combine_chunks() if len(tables) > 1 else tables[0]


def merge_rollups(rows: pa.Table) -> pa.Table:
    """Rows with the same key summed into one (``ROLLUP_KEY``)."""
    if rows.num_rows == 0:
        return ROLLUP_SCHEMA.empty_table()
    merged = rows.group_by(ROLLUP_KEY, use_threads=False).aggregate([("count", "sum"), ("errors", "sum")])
    return (
        merged.rename_columns([*ROLLUP_KEY, "count", "errors"])
        .select(ROLLUP_SCHEMA.names)
        .cast(ROLLUP_SCHEMA)
    )


def filter_rollups(
    rows: pa.Table,
    start_ns: int | None = None,
    end_ns: int | None = None,
    *,
    service: str | None = None,
    operation: str | None = None,
    attr_key: str | None = "",
    kinds: tuple[int, ...] = (),
) -> pa.Table:
    """Rows whose bucket overlaps ``[start_ns, end_ns)``, of one service/operation/key (``None``: any) and of
    ``kinds`` (empty: any)."""
    conditions = []
    if end_ns is not None:
        conditions.append(pc.less(rows.column("bucket_start_ns"), end_ns))
    if start_ns is not None:
        bucket_end = pc.add(
            rows.column("bucket_start_ns"),
            pc.multiply(rows.column("bucket_s").cast(pa.int64()), 1_000_000_000),
        )
        conditions.append(pc.greater(bucket_end, start_ns))
    for name, wanted in (("service", service), ("operation", operation), ("attr_key", attr_key)):
        if wanted is not None:
            conditions.append(pc.equal(rows.column(name), wanted))
    if kinds:
        conditions.append(of_kinds(rows.column("kind"), kinds))
    if not conditions:
        return rows
    mask = conditions[0]
    for condition in conditions[1:]:
        mask = pc.and_(mask, condition)
    return rows.filter(mask)

"""The shapes of what the store keeps besides spans: trace summaries, and rollups of 100% of spans. Shared
vocabulary: the aggregator writes rollups, stores keep them, analysis and the API read them."""

from __future__ import annotations

import pyarrow as pa

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

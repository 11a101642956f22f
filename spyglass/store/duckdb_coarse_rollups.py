"""Ten-minute rollups beside the fine ones, so that a metric over an hour or a day reads a tenth of the rows.

The ``rollups`` table holds a row per group and bucket of 10 s (base rows) or 60 s (attribute rows): an hour
of ten million spans grouped by one attribute is about 150,000 rows and ten million (row, sketch bin) pairs,
which is most of ``/api/v1/metrics``'s time. ``coarse_rollups`` holds the same sums per ``COARSE_BUCKET_S``
bucket, for a contiguous span of time, ``[start_ns, until_ns)`` in ``coarse_rollup_span``:

- **Filled as time passes.** A write whose newest bucket is ``SETTLE_S`` past the end of the first
  uncovered ten minutes sums that slice's stored rows into it and moves ``until_ns`` on (in the write's
  transaction, so a reader sees both tables agree). A write of rows below ``until_ns`` (a late export) adds
  them to both tables.
- **Read only where it is whole.** A query in steps of a multiple of ten minutes reads the coarse rows of
  the whole ten minutes inside both its window and the span, and fine rows elsewhere; the sums are the same
  as from fine rows alone, since every coarse row is the sum of the fine rows of its ten minutes.
- **Given up where retention changes the fine rows.** Expiry and downsampling move ``start_ns`` past the
  slice they changed and delete the coarse rows below it.

The span lives in the database, not in memory, so that a compaction's replay of writes onto its copy does
there what it did here.
"""

from __future__ import annotations

import duckdb

from spyglass.model.rollups import COARSE_ROLLUP_S
from spyglass.store.protocol import RollupQuery

#: The coarse bucket: it holds six attribute buckets and sixty base ones.
COARSE_BUCKET_S = COARSE_ROLLUP_S
COARSE_BUCKET_NS = COARSE_BUCKET_S * 1_000_000_000
#: A slice is summed once the newest data is this far past its end (rows later than that are added as they come).
SETTLE_S = 60
#: Buckets further ahead of the clock than this (a client's clock wrong by a year) do not move the span on.
FUTURE_SLACK_S = 300
#: Slices summed by one write at most; beyond (the data jumped ahead), the span starts again at the newest data.
MAX_SLICES_PER_WRITE = 12

#: Where the coarse rows cover (one row); the coarse rows are a table ``coarse_rollups`` made as ``rollups``.
CREATE_SPAN = (
    "CREATE TABLE IF NOT EXISTS coarse_rollup_span (start_ns BIGINT NOT NULL, until_ns BIGINT NOT NULL)"
)

_GROUP = "service, operation, kind, attr_key, attr_value"
# Late rows (``incoming_rollups``, one row per bin) of the covered span, summed into their coarse buckets.
_ADD_LATE = f"""
INSERT INTO coarse_rollups
SELECT b, {COARSE_BUCKET_S}, {_GROUP}, list(bin ORDER BY bin), list(n ORDER BY bin), list(e ORDER BY bin)
FROM (
    SELECT bucket_start_ns - bucket_start_ns % {COARSE_BUCKET_NS} AS b, {_GROUP}, bin,
           sum(count)::BIGINT AS n, sum(errors)::BIGINT AS e
    FROM incoming_rollups WHERE bucket_s < {COARSE_BUCKET_S} AND bucket_start_ns >= $start AND bucket_start_ns < $until
    GROUP BY ALL
)
GROUP BY b, {_GROUP}
"""  # noqa: S608 (constants only)
# One aligned slice's rows finer than a target bucket (and those already at it, so stragglers merge in too),
# and the same rows merged into target buckets: retention's downsampling, and the ten-minute rows here.
SLICE_TO_MERGE = "bucket_s <= $bucket_s AND bucket_start_ns >= $start AND bucket_start_ns < $end"
# Sums by a small integer per group (not by its strings) over the unnested bins: a quarter faster.
MERGED_SLICE = f"""
WITH slice AS (
    SELECT bucket_start_ns - bucket_start_ns % $bucket_ns AS b, service, operation, kind, attr_key, attr_value,
           bins, counts, errors
    FROM rollups WHERE {SLICE_TO_MERGE}
), groups AS (
    SELECT b, service, operation, kind, attr_key, attr_value, row_number() OVER () AS g
    FROM (SELECT DISTINCT b, service, operation, kind, attr_key, attr_value FROM slice)
), pairs AS (
    SELECT g, unnest(bins) AS bin, unnest(counts) AS n, unnest(errors) AS e
    FROM slice JOIN groups USING (b, service, operation, kind, attr_key, attr_value)
), summed AS (
    SELECT g, bin, sum(n)::BIGINT AS n, sum(e)::BIGINT AS e FROM pairs GROUP BY g, bin
), lists AS (
    SELECT g, list(bin ORDER BY bin) AS bins, list(n ORDER BY bin) AS counts, list(e ORDER BY bin) AS errors
    FROM summed GROUP BY g
)
SELECT b AS bucket_start_ns, $bucket_s::INTEGER AS bucket_s, service, operation, kind, attr_key, attr_value,
       bins, counts, errors
FROM lists JOIN groups USING (g)
ORDER BY b, service, operation, kind, attr_key, attr_value
"""  # noqa: S608 (fixed text; every value is a parameter)


def floor_bucket(ns: int) -> int:
    return ns - ns % COARSE_BUCKET_NS


def ceil_bucket(ns: int) -> int:
    return -floor_bucket(-ns)


def coarse_span(cur: duckdb.DuckDBPyConnection) -> tuple[int, int] | None:
    """``(start_ns, until_ns)`` of the time the coarse rows cover, or None before the first write."""
    rows = cur.execute("SELECT start_ns, until_ns FROM coarse_rollup_span").fetchall()
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


def _set_span(cur: duckdb.DuckDBPyConnection, start_ns: int, until_ns: int) -> None:
    cur.execute("DELETE FROM coarse_rollup_span")
    cur.execute("INSERT INTO coarse_rollup_span VALUES (?, ?)", [start_ns, until_ns])


def after_write(cur: duckdb.DuckDBPyConnection, oldest_ns: int, newest_ns: int, now_ns: int) -> None:
    """In the transaction of a write of ``incoming_rollups`` (buckets from ``oldest_ns`` to ``newest_ns``), once
    its fine rows are in: add its late rows to the coarse ones, and sum the slices now settled. Time is the
    data's, but never further ahead of ``now_ns`` than ``FUTURE_SLACK_S``: one span stamped a year ahead would
    otherwise restart the span there, and nothing would be summed for a year."""
    newest_ns = min(newest_ns, now_ns + FUTURE_SLACK_S * 1_000_000_000)
    span = coarse_span(cur)
    if span is None:
        start = until = floor_bucket(newest_ns)
    else:
        start, until = span
        if oldest_ns < until:
            cur.execute(_ADD_LATE, {"start": start, "until": until})
    due = (newest_ns - SETTLE_S * 1_000_000_000 - until) // COARSE_BUCKET_NS
    if due > MAX_SLICES_PER_WRITE:  # a jump ahead: cover from the newest data on
        cur.execute("DELETE FROM coarse_rollups")
        start = until = floor_bucket(newest_ns)
        due = 0
    for _ in range(max(0, due)):
        slice_ = {"start": until, "end": until + COARSE_BUCKET_NS}
        cur.execute(
            f"INSERT INTO coarse_rollups {MERGED_SLICE}",  # noqa: S608 (constants only)
            {**slice_, "bucket_s": COARSE_BUCKET_S, "bucket_ns": COARSE_BUCKET_NS},
        )
        until += COARSE_BUCKET_NS
    if span != (start, until):
        _set_span(cur, start, until)


def give_up_before(cur: duckdb.DuckDBPyConnection, end_ns: int) -> None:
    """Retention changed the fine rows before ``end_ns`` (in the caller's transaction): the coarse rows no
    longer cover anything before it."""
    span = coarse_span(cur)
    if span is None or span[0] >= end_ns:
        return
    start = ceil_bucket(end_ns)
    cur.execute("DELETE FROM coarse_rollups WHERE bucket_start_ns < ?", [start])
    _set_span(cur, start, max(span[1], start))


def coarse_part(cur: duckdb.DuckDBPyConnection, query: RollupQuery) -> tuple[int, int] | None:
    """The whole coarse buckets ``[from, to)`` the query can read instead of fine rows: inside its window and
    the covered span, when it sums into steps the coarse buckets fit in whole."""
    if query.resolution_s is None or query.resolution_s % COARSE_BUCKET_S:
        return None
    span = coarse_span(cur)
    if span is None:
        return None
    low = max(ceil_bucket(int(query.start_ns)), span[0])
    high = min(floor_bucket(int(query.end_ns)), span[1])
    return (low, high) if high > low else None

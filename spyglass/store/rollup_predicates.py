"""What the DuckDB and ClickHouse stores share about rollups: the rows a write accepts, and the conditions
that select a ``RollupQuery``'s rows. Both keep rollups in a table of the same column names; each backend only
spells the cast and the placeholders (its ``Dialect``) and writes its own SELECT around these conditions.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.rollups import ROLLUP_SCHEMA
from spyglass.store.protocol import RollupQuery
from spyglass.store.span_predicates import Dialect, Params, conform, kind_in

#: The widest rollup bucket a write may carry; it lets window queries bound ``bucket_start_ns`` from below
#: with a plain range, which prunes row groups (DuckDB) or granules (ClickHouse).
MAX_ROLLUP_BUCKET_S = 3600


def conform_rollups(rows: pa.Table) -> pa.Table:
    """Rollup rows as ``ROLLUP_SCHEMA``; ValueError for a missing column or a bucket size outside
    ``1..MAX_ROLLUP_BUCKET_S``."""
    rows = conform(rows, ROLLUP_SCHEMA, "rollup table lacks columns")
    bucket_s = rows.column("bucket_s")
    if pc.any(pc.or_(pc.less_equal(bucket_s, 0), pc.greater(bucket_s, MAX_ROLLUP_BUCKET_S))).as_py():
        raise ValueError(f"rollup bucket_s must be in 1..{MAX_ROLLUP_BUCKET_S}")
    return rows


def rollup_conditions(dialect: Dialect, params: Params, query: RollupQuery) -> list[str]:
    """Stored rows of the query's kind (base rows for ``attr_key=None``) whose bucket overlaps its window, of
    its service and operation when given; in the order of the text, so positional placeholders line up.

    ValueError when ``resolution_s`` is not positive, before anything is read."""
    if query.resolution_s is not None and query.resolution_s <= 0:
        raise ValueError("resolution_s must be positive")
    start_ns = int(query.start_ns)
    earliest_bucket_ns = start_ns - MAX_ROLLUP_BUCKET_S * 10**9
    where = [
        f"attr_key = {params(query.attr_key or '', dialect.string)}",
        # The first two bounds are plain ranges on bucket_start_ns, so DuckDB's zone maps skip old row groups
        # and ClickHouse reads one range of granules (the sort key's second column).
        f"bucket_start_ns < {params(int(query.end_ns), dialect.int64)}",
        f"bucket_start_ns > {params(earliest_bucket_ns, dialect.int64)}",
        f"bucket_start_ns + {dialect.int64_of('bucket_s')} * 1000000000 > {params(start_ns, dialect.int64)}",
    ]
    if query.service is not None:
        where.append(f"service = {params(query.service, dialect.string)}")
    if query.operation is not None:
        where.append(f"operation = {params(query.operation, dialect.string)}")
    if query.kinds:
        where.append(kind_in("kind", dialect, params, query.kinds))
    return where

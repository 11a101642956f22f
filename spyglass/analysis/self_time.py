"""Own (exclusive) time of every span: its duration minus the part of it its children cover.

Children are clipped to their parent's interval and merged where they overlap (parallel children cover the
same time once), with one DuckDB window function over all spans at once.
"""

from __future__ import annotations

import pyarrow as pa

from spyglass.model.arrow_sql import query_arrow

_SELF_TIME_SQL = """
WITH kids AS (
    SELECT c.trace_id, c.parent_span_id AS parent,
           greatest(c.start_ns, p.start_ns) AS s,
           least(c.start_ns + c.duration_ns, p.start_ns + p.duration_ns) AS e
    FROM spans c JOIN spans p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id
),
ordered AS (
    SELECT trace_id, parent, s, e,
           max(e) OVER (PARTITION BY trace_id, parent ORDER BY s, e
                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS covered_until
    FROM kids WHERE e > s
),
covered AS (
    SELECT trace_id, parent, sum(greatest(0, e - greatest(s, coalesce(covered_until, s)))) AS covered_ns
    FROM ordered GROUP BY trace_id, parent
)
SELECT spans.*, greatest(0, spans.duration_ns - coalesce(covered.covered_ns, 0))::BIGINT AS self_ns
FROM spans LEFT JOIN covered ON covered.trace_id = spans.trace_id AND covered.parent = spans.span_id
"""


def with_self_time(spans: pa.Table) -> pa.Table:
    """``spans`` (any columns including trace_id, span_id, parent_span_id, start_ns, duration_ns) plus
    ``self_ns``."""
    return query_arrow(_SELF_TIME_SQL, spans=spans)

"""The service graph: which service calls which, how often, how many calls failed, how slow they were.

Two sources of edges: a span in one service whose child span is in another (both sides instrumented), and a
client or producer span with no child in another service but naming its peer (``peer.service``, else
``db.system``, else ``server.address`` / ``net.peer.name``): an uninstrumented dependency such as a database
or a third-party API. Computed with DuckDB over the window's Arrow spans: a hash join, whatever the volume.

Stored spans are a sample: each call counts by its span's ``sample_weight`` (the traces it stands for, times
what its service's head sampling dropped), so call and error counts estimate all traffic, and the p99 is the
weighted one.
"""

from __future__ import annotations

import pyarrow as pa

from spyglass.model.arrow_sql import query_arrow

COLUMNS = [
    "trace_id",
    "span_id",
    "parent_span_id",
    "service",
    "kind",
    "status_code",
    "duration_ns",
    "attributes",
    "sample_weight",
]

_EDGES_SQL = """
WITH instrumented AS (
    SELECT p.service AS parent, c.service AS child, c.status_code, c.duration_ns, c.sample_weight AS w,
           p.span_id, p.trace_id
    FROM spans c JOIN spans p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id
    WHERE c.service <> p.service
),
peers AS (
    SELECT s.service AS parent,
           coalesce(s.attributes['peer.service'], s.attributes['db.system'], s.attributes['server.address'],
                    s.attributes['net.peer.name']) AS child,
           s.status_code, s.duration_ns, s.sample_weight AS w
    FROM spans s
    WHERE s.kind IN (3, 4)
      AND coalesce(s.attributes['peer.service'], s.attributes['db.system'], s.attributes['server.address'],
                   s.attributes['net.peer.name']) IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM instrumented i WHERE i.trace_id = s.trace_id AND i.span_id = s.span_id)
),
edges AS (
    SELECT parent, child, status_code, duration_ns, w, false AS uninstrumented FROM instrumented
    UNION ALL
    SELECT parent, child, status_code, duration_ns, w, true FROM peers WHERE child <> parent
),
ranked AS (
    SELECT *, sum(w) OVER (PARTITION BY parent, child ORDER BY duration_ns ROWS UNBOUNDED PRECEDING) AS below,
           sum(w) OVER (PARTITION BY parent, child) AS total
    FROM edges
)
SELECT parent, child,
       round(sum(w))::BIGINT AS calls,
       round(coalesce(sum(w) FILTER (WHERE status_code = 2), 0))::BIGINT AS errors,
       min(duration_ns) FILTER (WHERE below >= 0.99 * total) / 1e6 AS p99_ms,
       bool_and(uninstrumented) AS uninstrumented
FROM ranked
GROUP BY parent, child ORDER BY calls DESC, parent, child
"""


def dependency_edges(spans: pa.Table) -> pa.Table:
    """``parent, child, calls, errors, p99_ms, uninstrumented`` per service pair, busiest first."""
    return query_arrow(_EDGES_SQL, spans=spans.select(COLUMNS))

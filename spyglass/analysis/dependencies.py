"""The service graph: which service calls which, how often, how many failed, how slow.

An edge is a parent span in one service whose child span is in another. Computed with DuckDB over the Arrow
table of the window's spans, so it is one hash join whatever the number of spans.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

COLUMNS = ["trace_id", "span_id", "parent_span_id", "service", "status_code", "duration_ns"]


def dependency_edges(spans: pa.Table) -> pa.Table:
    """``parent, child, calls, errors, p99_ms`` per service pair, busiest first."""
    connection = duckdb.connect()
    try:
        connection.register("spans", spans.select(COLUMNS))
        return connection.sql(
            """
            SELECT p.service AS parent, c.service AS child,
                   count(*) AS calls,
                   count(*) FILTER (WHERE c.status_code = 2) AS errors,
                   quantile_cont(c.duration_ns, 0.99) / 1e6 AS p99_ms
            FROM spans c JOIN spans p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id
            WHERE c.service <> p.service
            GROUP BY ALL ORDER BY calls DESC, parent, child
            """
        ).to_arrow_table()
    finally:
        connection.close()

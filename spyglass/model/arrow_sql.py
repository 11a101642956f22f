"""SQL over Arrow tables in memory: DuckDB reads the tables in place and answers with an Arrow table.

Analysis and the sampler express joins, window functions and group-bys over span batches this way instead of
Python loops. Values are always bound parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa


def query_arrow(sql: str, params: Sequence[object] | None = None, **tables: pa.Table) -> pa.Table:
    """Run ``sql`` with each keyword table registered under its name; a fresh connection per call, so any
    thread may call it."""
    connection = duckdb.connect()
    try:
        for name, table in tables.items():
            connection.register(name, table)
        relation = connection.sql(sql, params=list(params)) if params else connection.sql(sql)
        return relation.to_arrow_table()
    finally:
        connection.close()

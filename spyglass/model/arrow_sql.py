"""SQL over Arrow tables in memory: DuckDB reads the tables in place and answers with an Arrow table.

Analysis and the sampler express joins, window functions and group-bys over span batches this way instead of
Python loops. Values are always bound parameters.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import duckdb
import pyarrow as pa

_lock = threading.Lock()
_database: duckdb.DuckDBPyConnection | None = None
_database_pid = 0


def _cursor() -> duckdb.DuckDBPyConnection:
    """A new connection to the process's one in-memory database: opening a database costs more than most of
    the queries run on it. A forked child opens its own (the parent's worker threads did not come along)."""
    global _database, _database_pid
    with _lock:
        if _database is None or _database_pid != os.getpid():
            _database = duckdb.connect(":memory:")
            _database_pid = os.getpid()
        return _database.cursor()


def query_arrow(sql: str, params: Sequence[object] | None = None, **tables: pa.Table) -> pa.Table:
    """Run ``sql`` with each keyword table registered under its name. Each call has a connection of its own,
    where its tables are registered privately and unregistered after, so any thread may call it."""
    connection = _cursor()
    try:
        for name, table in tables.items():
            connection.register(name, table)
        try:
            relation = connection.sql(sql, params=list(params)) if params else connection.sql(sql)
            return relation.to_arrow_table()
        finally:
            for name in tables:
                connection.unregister(name)
    finally:
        connection.close()

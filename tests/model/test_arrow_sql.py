"""SQL over Arrow: one shared database, each call's tables private to it."""

from __future__ import annotations

import threading

import pyarrow as pa

from spyglass.model.arrow_sql import query_arrow


def test_calls_from_many_threads_see_only_their_own_tables() -> None:
    wrong: list[int] = []

    def work(value: int) -> None:
        for _ in range(50):
            table = pa.table({"x": [value] * 4})
            total = query_arrow("SELECT sum(x) AS total FROM spans", spans=table).column("total")[0].as_py()
            if total != 4 * value:
                wrong.append(value)

    threads = [threading.Thread(target=work, args=(value,)) for value in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_tables_are_unregistered_after_the_call() -> None:
    assert query_arrow("SELECT count(*) AS n FROM spans", spans=pa.table({"x": [1, 2]})).to_pylist() == [
        {"n": 2}
    ]
    missing = query_arrow("SELECT count(*) AS n FROM duckdb_views() WHERE view_name = 'spans'")
    assert missing.to_pylist() == [{"n": 0}]


def test_parameters_are_bound() -> None:
    result = query_arrow("SELECT x FROM spans WHERE x > ? ORDER BY x", [1], spans=pa.table({"x": [1, 2, 3]}))
    assert result.column("x").to_pylist() == [2, 3]

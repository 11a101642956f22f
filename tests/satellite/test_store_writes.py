"""A store write that fails for one row's sake costs only that row; other failures are retried, within a bound."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from spyglass.model.log_schema import LOG_SCHEMA
from spyglass.model.schema import SPAN_SCHEMA
from spyglass.satellite.log_writer import LogWriter
from spyglass.satellite.pipeline import Satellite, SatelliteSettings
from spyglass.satellite.sampler import KeepAllSampler
from spyglass.satellite.store_writes import write_isolating
from spyglass.store.duckdb_store import DuckDBStore
from spyglass.store.protocol import UnwritableRows
from tests.support.spans import trace_batch


def _with_repeated_key(batch: pa.RecordBatch, row: int, column: str = "attributes") -> pa.RecordBatch:
    """``batch`` with ``row``'s map in ``column`` holding one key twice: what no decoder lets through any more,
    and what DuckDB's map type refuses ("Arrow map contains duplicate key")."""
    maps = batch.column(column).to_pylist()
    maps[row] = [("dup", "0"), ("dup", "1")]
    index = batch.schema.get_field_index(column)
    return batch.set_column(
        index, batch.schema.field(column), pa.array(maps, batch.schema.field(column).type)
    )


def test_one_unwritable_span_costs_only_itself(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    satellite = Satellite(SatelliteSettings(decision_wait_s=0.05), store, KeepAllSampler())
    batch, ids = trace_batch(200)
    poisoned_row = 301  # a child span of trace 100
    batch = _with_repeated_key(batch, poisoned_row)
    satellite.start()
    try:
        started = time.monotonic()
        assert satellite.submit(batch)
        satellite.flush()
        elapsed_s = time.monotonic() - started
    finally:
        satellite.stop()
    counters = satellite.counters
    assert counters.spans_unwritable == 1
    assert counters.spans_stored == 599
    assert counters.spans_write_failed == 0
    assert elapsed_s < 5, "isolating a refused row must not wait out retries"
    for index, trace_id in enumerate(ids):
        assert store.trace(trace_id).num_rows == (2 if index == 100 else 3)
    store.close()


def test_one_unwritable_log_record_costs_only_itself(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    writer = LogWriter(store)
    trace_ids = [bytes([i + 1]) * 16 for i in range(50)]
    records = pa.table(
        {
            "time_ns": np.arange(50, dtype=np.int64) + 1_700_000_000_000_000_000,
            "observed_time_ns": np.zeros(50, dtype=np.int64),
            "trace_id": trace_ids,
            "span_id": [b"\x01" * 8] * 50,
            "severity_number": np.full(50, 9, dtype=np.int8),
            "service": ["svc"] * 50,
        }
    )
    full = pa.table(
        {
            f.name: records[f.name] if f.name in records.column_names else pa.nulls(50, f.type)
            for f in LOG_SCHEMA
        },
        schema=LOG_SCHEMA,
    )
    full = pa.Table.from_batches([_with_repeated_key(full.to_batches()[0], 7, "attributes")])
    writer.start()
    try:
        assert writer.submit_logs(full.to_batches()[0])
        writer.flush()
    finally:
        writer.stop()
    assert writer.counters.unwritable == 1
    assert writer.counters.stored == 49
    stored = store.logs_for_traces(trace_ids)
    assert stored.num_rows == 49
    assert trace_ids[7] not in stored.column("trace_id").to_pylist()
    store.close()


def test_transient_failures_are_retried_until_they_pass() -> None:
    rows, _ = trace_batch(4)
    attempts: list[int] = []

    def flaky(table: pa.Table) -> None:
        attempts.append(table.num_rows)
        if len(attempts) < 3:
            raise duckdb.IOException("disk briefly unavailable")

    report = write_isolating(flaky, pa.Table.from_batches([rows]), "spans", retry_bound_s=5)
    assert report.written == 12 and report.failed == 0 and report.unwritable == 0
    assert attempts == [12, 12, 12]  # a transient failure is not a reason to split the batch


def test_transient_failures_never_hold_the_writer_past_the_bound() -> None:
    rows, _ = trace_batch(4)

    def down(table: pa.Table) -> None:
        raise duckdb.IOException("store unavailable")

    started = time.monotonic()
    report = write_isolating(down, pa.Table.from_batches([rows]), "spans", retry_bound_s=0.5)
    assert time.monotonic() - started < 1.0
    assert report.failed == 12 and report.written == 0


@pytest.mark.parametrize("bad_rows", [[0], [11], [3, 4, 5], list(range(12))])
def test_every_refused_row_is_found_and_no_other(bad_rows: list[int]) -> None:
    batch, ids = trace_batch(4)
    table = pa.Table.from_batches([batch]).append_column("row", pa.array(range(12)))
    written: list[int] = []

    def refuse_some(part: pa.Table) -> None:
        rows = part.column("row").to_pylist()
        if set(rows) & set(bad_rows):
            raise UnwritableRows("a value the store cannot hold")
        written.extend(rows)

    report = write_isolating(refuse_some, table, "spans")
    assert sorted(written) == [r for r in range(12) if r not in bad_rows]
    assert report.unwritable == len(bad_rows) and report.written == 12 - len(bad_rows)
    assert report.unwritable_trace_ids == [ids[r // 3].hex() for r in bad_rows]


def test_the_duckdb_store_names_a_refused_row_as_unwritable(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    batch, _ = trace_batch(1)
    table = pa.Table.from_batches([_with_repeated_key(batch, 0)], schema=SPAN_SCHEMA)
    table = table.append_column("sample_weight", pa.array([1.0] * 3))
    with pytest.raises(UnwritableRows, match="duplicate key"):
        store.write(table)
    assert store.span_count() == 0  # nothing of the refused write is left behind
    store.close()

"""Retention verbs, for every backend: ``expire`` deletes the oldest data slice by slice and nothing newer,
``downsample_rollups`` merges rollups into coarser buckets without changing any answer read from them, and
``storage_figures`` reports what is held."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from spyglass.model.log_schema import LOG_SCHEMA
from spyglass.model.retention import RetentionPolicy
from spyglass.model.rollups import ROLLUP_SCHEMA
from spyglass.model.sketch import bucket_index, quantiles
from spyglass.store.clickhouse_store import ClickHouseStore
from spyglass.store.protocol import ExpiringData, RollupQuery, Store, TraceQuery

from .conftest import SECOND, chdb_url, discard_store, make_trace, trace_id_of

HOUR = 3600 * SECOND
DAY = 24 * HOUR
#: A day boundary: ClickHouse partitions spans and logs by day.
DAY0 = 1_700_000_000 * SECOND // DAY * DAY


def expire_all(store: Store, data: ExpiringData, before_ns: int, slice_ns: int = HOUR) -> tuple[int, int]:
    """Call ``expire`` until nothing older remains; returns (rows deleted, steps taken)."""
    rows = steps = 0
    while True:
        step = store.expire(data, before_ns, slice_ns)
        rows += step.rows
        steps += 1
        assert steps < 1000
        if not step.more:
            return rows, steps


def write_days(store: Store, days: int = 3, every_h: int = 6) -> list[tuple[bytes, int]]:
    """A six-span trace every ``every_h`` hours for ``days`` days, each with two log records."""
    written = []
    for day in range(days):
        for hour in range(0, 24, every_h):
            start = DAY0 + day * DAY + hour * HOUR
            trace_id = trace_id_of(f"d{day}h{hour}")
            spans = make_trace(trace_id, start_ns=start)
            store.write(spans)
            store.write_logs(log_records(trace_id, [start, start + SECOND]))
            written.append((trace_id, start))
    return written


def log_records(trace_id: bytes, times_ns: list[int]) -> pa.Table:
    columns: dict[str, Any] = {
        "time_ns": times_ns,
        "observed_time_ns": times_ns,
        "trace_id": [trace_id] * len(times_ns),
        "severity_number": [9] * len(times_ns),
        "body": ["hello"] * len(times_ns),
        "service": ["frontend"] * len(times_ns),
    }
    return pa.table(
        {f.name: columns.get(f.name, [None] * len(times_ns)) for f in LOG_SCHEMA}, schema=LOG_SCHEMA
    )


def test_expire_deletes_spans_traces_and_logs_older_than_the_cutoff(store: Store) -> None:
    written = write_days(store)
    cutoff = DAY0 + DAY + 12 * HOUR
    figures = store.storage_figures()
    assert (figures.oldest_span_ns, figures.oldest_log_ns) == (DAY0, DAY0)

    span_rows, steps = expire_all(store, "spans", cutoff)
    log_rows, _ = expire_all(store, "logs", cutoff)

    old = [trace_id for trace_id, start in written if start < cutoff]
    kept = [trace_id for trace_id, start in written if start >= cutoff]
    assert (span_rows, log_rows) == (6 * len(old), 2 * len(old))
    assert steps > 1  # in slices, not all at once
    assert store.span_count() == 6 * len(kept)
    assert all(store.trace(trace_id).num_rows == 0 for trace_id in old)
    assert all(store.trace(trace_id).num_rows == 6 for trace_id in kept)
    found = store.find_traces(TraceQuery(limit=100)).column("trace_id").to_pylist()
    assert sorted(found) == sorted(kept)
    assert store.logs_for_traces(old).num_rows == 0
    assert store.logs_for_traces(kept).num_rows == 2 * len(kept)
    figures = store.storage_figures()
    assert figures.oldest_span_ns == figures.oldest_log_ns == DAY0 + DAY + 12 * HOUR
    assert figures.disk_bytes > 0
    # Nothing older remains: the next call has nothing to do.
    step = store.expire("spans", cutoff, HOUR)
    assert (step.rows, step.more) == (0, False)


def test_expire_on_an_empty_store_does_nothing(store: Store) -> None:
    for data in ("spans", "logs", "rollups"):
        step = store.expire(data, DAY0, HOUR)  # type: ignore[arg-type]
        assert (step.rows, step.more) == (0, False)
    assert store.downsample_rollups(DAY0, 60, HOUR).rows == 0
    figures = store.storage_figures()
    assert (figures.oldest_span_ns, figures.oldest_log_ns, figures.oldest_rollup_ns) == (None, None, None)
    store.reclaim_space()


def rollup_rows(
    start_ns: int, seconds: int, bucket_s: int = 10, attr_key: str = "", seed: int = 3
) -> tuple[pa.Table, np.ndarray]:
    """Rollup rows of ``seconds`` of one operation's spans (a few per bucket, some failing), and the raw
    durations they were counted from."""
    rng = np.random.default_rng(seed)
    entries = []
    durations: list[np.ndarray] = []
    for bucket in range(seconds // bucket_s):
        spans = rng.lognormal(np.log(50e6), 0.7, size=int(rng.integers(1, 12))).astype(np.int64)
        durations.append(spans)
        bins, counts = np.unique(bucket_index(spans), return_counts=True)
        for b, c in zip(bins.tolist(), counts.tolist(), strict=True):
            entries.append(
                {
                    "bucket_start_ns": start_ns + bucket * bucket_s * SECOND,
                    "bucket_s": bucket_s,
                    "service": "web",
                    "operation": "GET /",
                    "kind": 2,
                    "attr_key": attr_key,
                    "attr_value": "v1" if attr_key else "",
                    "bin": b,
                    "count": c,
                    "errors": c if b % 7 == 0 else 0,
                }
            )
    return pa.Table.from_pylist(entries, schema=ROLLUP_SCHEMA), np.concatenate(durations)


def by_key(table: pa.Table, *key: str) -> dict[tuple[Any, ...], tuple[int, int]]:
    totals: dict[tuple[Any, ...], tuple[int, int]] = {}
    for row in table.to_pylist():
        k = tuple(row[name] for name in key)
        count, errors = totals.get(k, (0, 0))
        totals[k] = (count + row["count"], errors + row["errors"])
    return totals


def test_downsampling_keeps_every_answer_and_coarsens_the_rows(store: Store) -> None:
    base, durations = rollup_rows(DAY0, 3 * 3600)
    attributes, _ = rollup_rows(DAY0, 3 * 3600, bucket_s=60, attr_key="host.name", seed=4)
    store.write_rollups(base)
    store.write_rollups(attributes)
    window = RollupQuery(DAY0, DAY0 + 3 * HOUR)
    before = store.rollups(window)
    before_by_bin = by_key(before, "bin")
    hourly_before = by_key(
        store.rollups(RollupQuery(DAY0, DAY0 + 3 * HOUR, resolution_s=3600)), "bucket_start_ns", "bin"
    )

    # Minutes for the first two hours, then hours for the first: each step a slice, totals right after each.
    steps = 0
    while True:
        step = store.downsample_rollups(DAY0 + 2 * HOUR + 59 * SECOND, 60, 20 * 60 * SECOND)
        steps += 1
        assert by_key(store.rollups(window), "bin") == before_by_bin
        if not step.more:
            break
    assert steps == 6  # two hours in 20-minute slices (a minute short of the third hour: not merged)
    while store.downsample_rollups(DAY0 + HOUR, 3600, HOUR).more:
        pass
    after = store.rollups(window)
    assert by_key(after, "bin") == before_by_bin
    sizes = {(row["bucket_start_ns"] - DAY0) // HOUR: row["bucket_s"] for row in after.to_pylist()}
    assert sizes == {0: 3600, 1: 60, 2: 10}
    assert after.num_rows < before.num_rows
    # Attribute rows (60 s already) became hours in the first hour, and keep their totals.
    host = RollupQuery(DAY0, DAY0 + 3 * HOUR, attr_key="host.name")
    assert by_key(store.rollups(host), "bin") == by_key(attributes, "bin")
    assert {r["bucket_s"] for r in store.rollups(host).to_pylist() if r["bucket_start_ns"] < DAY0 + HOUR} == {
        3600
    }
    # Hourly reads are identical, and the p99 of the three hours is the sketch's, within 1% of the raw truth.
    hourly = store.rollups(RollupQuery(DAY0, DAY0 + 3 * HOUR, resolution_s=3600))
    assert by_key(hourly, "bucket_start_ns", "bin") == hourly_before
    bins = np.array(after.column("bin").to_pylist())
    counts = np.array(after.column("count").to_pylist())
    p99 = float(quantiles(bins, counts, [0.99])[0])
    truth = float(np.sort(durations)[int(np.ceil(0.99 * len(durations))) - 1])
    assert abs(p99 - truth) / truth < 0.01
    # A window inside a coarse bucket reads the bucket that holds it.
    inside = store.rollups(RollupQuery(DAY0 + 10 * 60 * SECOND, DAY0 + 11 * 60 * SECOND))
    assert {r["bucket_s"] for r in inside.to_pylist()} == {3600}


def test_rows_written_late_into_a_downsampled_slice_still_count(store: Store) -> None:
    rows, _ = rollup_rows(DAY0, 3600)
    store.write_rollups(rows)
    while store.downsample_rollups(DAY0 + HOUR, 60, HOUR).more:
        pass
    late, _ = rollup_rows(DAY0 + 600 * SECOND, 20, seed=11)  # a late export of two 10 s buckets
    store.write_rollups(late)
    expected = by_key(pa.concat_tables([rows, late]), "bin")
    assert by_key(store.rollups(RollupQuery(DAY0, DAY0 + HOUR)), "bin") == expected
    while store.downsample_rollups(DAY0 + HOUR, 3600, HOUR).more:
        pass
    got = store.rollups(RollupQuery(DAY0, DAY0 + HOUR))
    assert by_key(got, "bin") == expected
    assert set(got.column("bucket_s").to_pylist()) == {3600}


def test_expire_deletes_rollup_rows_whose_bucket_ended(store: Store) -> None:
    rows, _ = rollup_rows(DAY0, 2 * 3600)
    store.write_rollups(rows)
    while store.downsample_rollups(DAY0 + HOUR, 3600, HOUR).more:
        pass
    assert store.storage_figures().oldest_rollup_ns == DAY0
    # The first hour's bucket ends at DAY0 + 1 h: a second before, it is not expired yet (ClickHouse may delete
    # the fine rows it merged, which sum to nothing, so the count of rows deleted says nothing here).
    expire_all(store, "rollups", DAY0 + HOUR - SECOND, slice_ns=SECOND)
    assert by_key(store.rollups(RollupQuery(DAY0, DAY0 + 2 * HOUR)), "bin") == by_key(rows, "bin")
    deleted, _ = expire_all(store, "rollups", DAY0 + HOUR + 30 * 60 * SECOND, slice_ns=SECOND)
    assert deleted > 0
    left = store.rollups(RollupQuery(DAY0, DAY0 + 2 * HOUR))
    assert min(left.column("bucket_start_ns").to_pylist()) >= DAY0 + HOUR
    assert min(left.column("bucket_start_ns").to_pylist()) < DAY0 + HOUR + 30 * 60 * SECOND + 10 * SECOND
    expected = rows.filter(
        pa.compute.greater_equal(rows.column("bucket_start_ns"), DAY0 + HOUR + 30 * 60 * SECOND)
    )
    assert sum(left.column("count").to_pylist()) == sum(expected.column("count").to_pylist())


def test_bad_retention_arguments_are_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        store.expire("spans", DAY0, 0)
    with pytest.raises(ValueError):
        store.downsample_rollups(DAY0, 7, HOUR)  # does not divide an hour


def test_clickhouse_tables_carry_the_retention_as_ttl() -> None:
    opened = ClickHouseStore(
        chdb_url(), RetentionPolicy(retention_s=3 * 86_400, rollup_retention_s=30 * 86_400)
    )
    again: ClickHouseStore | None = None
    try:
        ddl = {
            table: opened._conn.query_arrow(f"SHOW CREATE TABLE {table}").column(0)[0].as_py()
            for table in ("otel_traces", "otel_logs", "spyglass_trace_summaries", "spyglass_rollups")
        }
        assert "TTL toDateTime(Timestamp) + toIntervalSecond(259200)" in ddl["otel_traces"]
        assert "TTL TimestampTime + toIntervalSecond(259200)" in ddl["otel_logs"]
        assert "toIntervalSecond(259200)" in ddl["spyglass_trace_summaries"]
        assert "toIntervalSecond(2592000)" in ddl["spyglass_rollups"]
        # Opening it again with another policy replaces the TTLs.
        again = ClickHouseStore(chdb_url(opened.database), RetentionPolicy(retention_s=86_400))
        ddl_again = again._conn.query_arrow("SHOW CREATE TABLE otel_traces").column(0)[0].as_py()
        assert "toIntervalSecond(86400)" in ddl_again and "259200" not in ddl_again
    finally:
        if again is not None:
            again.close()
        discard_store("clickhouse", opened)

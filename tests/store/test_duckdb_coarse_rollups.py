"""The DuckDB store's ten-minute rollups answer exactly what its fine rows do, whatever the order of the writes
(late exports, a jump ahead, a restart) and after retention expires or downsamples the fine rows."""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path

import pyarrow as pa
import pytest

from spyglass.model.rollups import ROLLUP_SCHEMA
from spyglass.store.duckdb_coarse_rollups import COARSE_BUCKET_NS, coarse_span
from spyglass.store.duckdb_store import DuckDBStore
from spyglass.store.protocol import RollupQuery
from tests.support.rollup_tables import SECOND_NS, TableRollups

T0 = 1_700_000_000 * SECOND_NS - (1_700_000_000 * SECOND_NS) % COARSE_BUCKET_NS
HOUR_NS = 3600 * SECOND_NS
KEYS = [("", ""), ("http.route", "/a"), ("http.route", "/b"), ("service.version", "1.2")]


def _rows(rng: random.Random, start_ns: int, end_ns: int, n: int) -> pa.Table:
    """``n`` fine rollup rows (base rows in 10 s buckets, attribute rows in 60 s) in ``[start_ns, end_ns)``."""
    rows = []
    for _ in range(n):
        key, value = rng.choice(KEYS)
        bucket_s = 10 if key == "" else 60
        at = rng.randrange(start_ns, end_ns)
        rows.append(
            {
                "bucket_start_ns": at - at % (bucket_s * SECOND_NS),
                "bucket_s": bucket_s,
                "service": rng.choice(["shop", "cart"]),
                "operation": rng.choice(["GET /", "POST /checkout"]),
                "kind": 2,
                "attr_key": key,
                "attr_value": value,
                "bin": rng.randrange(100, 140),
                "count": rng.randrange(1, 50),
                "errors": rng.choice([0, 0, 0, 1, 3]),
            }
        )
    return pa.Table.from_pylist(rows, schema=ROLLUP_SCHEMA)


def _feed(
    store: DuckDBStore, reference: TableRollups, rng: random.Random, start_ns: int, minutes: int
) -> None:
    """Writes in the order of time, a minute of data each, with some late rows up to 25 minutes old."""
    for minute in range(minutes):
        now = start_ns + minute * 60 * SECOND_NS
        parts = [_rows(rng, now, now + 60 * SECOND_NS, 40)]
        if minute > 2 and rng.random() < 0.3:
            parts.append(_rows(rng, max(start_ns, now - 25 * 60 * SECOND_NS), now, 5))
        rows = pa.concat_tables(parts)
        store.write_rollups(rows)
        reference.add(rows)


def _same_answers(
    store: DuckDBStore, reference: TableRollups, rng: random.Random, span_ns: tuple[int, int]
) -> int:
    """Random windows and steps: the store's answer is the reference's. Returns how many read coarse rows."""
    coarse_reads = 0
    for _ in range(60):
        start = rng.randrange(span_ns[0] - 20 * 60 * SECOND_NS, span_ns[1])
        end = start + rng.choice([5, 17, 60, 90, 200]) * 60 * SECOND_NS + rng.randrange(0, 60) * SECOND_NS
        resolution = rng.choice([600, 1200, 3600, 7200, 14400, 60, None])
        attr_key = rng.choice([None, "http.route", "service.version"])
        service = rng.choice([None, "shop"])
        query = RollupQuery(start, end, service, None, attr_key, resolution)
        if resolution is not None and resolution % 600 == 0:
            span = coarse_span(store._conn.cursor())
            coarse_reads += (
                span is not None and min(end, span[1]) - max(start, span[0]) > 2 * COARSE_BUCKET_NS
            )
        got = store.rollups(query).sort_by([(name, "ascending") for name in ROLLUP_SCHEMA.names])
        want = reference.read(query).sort_by([(name, "ascending") for name in ROLLUP_SCHEMA.names])
        assert got.to_pylist() == want.to_pylist(), query
        # A reader that tells only some key columns apart gets the others summed away, the same sums.
        told_apart = tuple(rng.sample(["service", "operation", "kind", "attr_value"], rng.randint(0, 2)))
        summed = store.rollups(dataclasses.replace(query, group_by=told_apart))
        for name in {"service", "operation", "attr_key", "attr_value"} - set(told_apart):
            assert set(summed.column(name).to_pylist()) <= {""}, (query, told_apart)
        assert _summed(summed, told_apart) == _summed(want, told_apart), (query, told_apart)
    return coarse_reads


def _summed(rows: pa.Table, told_apart: tuple[str, ...]) -> list[dict[str, object]]:
    keys = ["bucket_start_ns", "bucket_s", *told_apart, "bin"]
    sums = rows.group_by(keys).aggregate([("count", "sum"), ("errors", "sum")])
    ordered: list[dict[str, object]] = sums.sort_by([(name, "ascending") for name in keys]).to_pylist()
    return ordered


@pytest.mark.parametrize("seed", [1, 2])
def test_coarse_rows_answer_what_fine_rows_do(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "coarse.duckdb"
    store = DuckDBStore(path)
    reference = TableRollups()
    _feed(store, reference, rng, T0, 150)
    span = coarse_span(store._conn.cursor())
    assert span is not None and span[1] - span[0] >= 12 * COARSE_BUCKET_NS  # two hours and more covered
    assert _same_answers(store, reference, rng, (T0, T0 + 150 * 60 * SECOND_NS)) > 10
    # Reopened, it carries on from the span it kept.
    store.close()
    store = DuckDBStore(path)
    assert coarse_span(store._conn.cursor()) == span
    _feed(store, reference, rng, T0 + 150 * 60 * SECOND_NS, 30)
    assert _same_answers(store, reference, rng, (T0, T0 + 180 * 60 * SECOND_NS)) > 10
    # Data that jumps a day ahead: the span starts again there, and still nothing is counted twice or lost.
    later = T0 + 24 * HOUR_NS
    _feed(store, reference, rng, later, 40)
    span = coarse_span(store._conn.cursor())
    assert span is not None and span[0] >= later
    assert _same_answers(store, reference, rng, (later, later + 40 * 60 * SECOND_NS)) > 5
    _same_answers(store, reference, rng, (T0, T0 + 180 * 60 * SECOND_NS))
    store.close()


def test_a_span_stamped_far_ahead_does_not_move_the_covered_span(tmp_path: Path) -> None:
    rng = random.Random(4)
    store = DuckDBStore(tmp_path / "ahead.duckdb")
    reference = TableRollups()
    start = time.time_ns() - 40 * 60 * SECOND_NS
    _feed(store, reference, rng, start - start % COARSE_BUCKET_NS, 40)
    span = coarse_span(store._conn.cursor())
    assert span is not None and span[1] > span[0]
    year_ahead = time.time_ns() + 365 * 24 * HOUR_NS  # a client's clock a year wrong
    ahead = _rows(rng, year_ahead, year_ahead + SECOND_NS, 1)
    store.write_rollups(ahead)
    reference.add(ahead)
    after = coarse_span(store._conn.cursor())  # not started again a year ahead; at most up to now
    assert after is not None and after[0] == span[0] and after[1] <= time.time_ns() + 5 * 60 * SECOND_NS
    query = RollupQuery(year_ahead - HOUR_NS, year_ahead + HOUR_NS, None, None, None, 3600)
    assert store.rollups(query).to_pylist() == reference.read(query).to_pylist()
    store.close()


def test_retention_leaves_coarse_rows_where_fine_rows_are_unchanged(tmp_path: Path) -> None:
    rng = random.Random(3)
    store = DuckDBStore(tmp_path / "retention.duckdb")
    reference = TableRollups()
    _feed(store, reference, rng, T0, 180)
    # Downsampling merges fine rows: their sums are unchanged, but the coarse rows give way there.
    cutoff = T0 + 70 * 60 * SECOND_NS
    while store.downsample_rollups(cutoff, 300, 30 * 60 * SECOND_NS).more:
        pass
    span = coarse_span(store._conn.cursor())
    assert span is not None and span[0] >= cutoff - cutoff % (300 * SECOND_NS)
    for query in [RollupQuery(T0, T0 + 3 * HOUR_NS, None, None, key, 3600) for key in (None, "http.route")]:
        got = store.rollups(query).sort_by([(name, "ascending") for name in ROLLUP_SCHEMA.names])
        want = reference.read(query).sort_by([(name, "ascending") for name in ROLLUP_SCHEMA.names])
        assert got.to_pylist() == want.to_pylist()
    # Expiry deletes the oldest fine rows; the coarse rows before the cut go with them.
    expired = T0 + 100 * 60 * SECOND_NS + 30 * SECOND_NS
    while store.expire("rollups", expired, 20 * 60 * SECOND_NS).more:
        pass
    span = coarse_span(store._conn.cursor())
    assert span is not None and span[0] >= expired
    kept = TableRollups()
    remaining = reference.rows.filter(
        pa.compute.greater(
            pa.compute.add(
                reference.rows.column("bucket_start_ns"),
                pa.compute.multiply(reference.rows.column("bucket_s").cast(pa.int64()), SECOND_NS),
            ),
            expired,
        )
    )
    kept.add(remaining)
    assert _same_answers(store, kept, rng, (expired, T0 + 180 * 60 * SECOND_NS)) > 5
    store.close()

"""Rollup storage, for every backend: appended rows add up by key, and window and filters select buckets."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pyarrow as pa
import pytest

from spyglass.model.rollups import ROLLUP_SCHEMA
from spyglass.store.protocol import RollupQuery, Store

BASE_NS = 1_700_000_040_000_000_000
SECOND = 1_000_000_000


def rows(*entries: dict[str, Any]) -> pa.Table:
    defaults = {
        "bucket_start_ns": BASE_NS,
        "bucket_s": 10,
        "service": "web",
        "operation": "GET /",
        "kind": 2,
        "attr_key": "",
        "attr_value": "",
        "bin": 1380,
        "count": 1,
        "errors": 0,
    }
    return pa.Table.from_pylist([{**defaults, **entry} for entry in entries], schema=ROLLUP_SCHEMA)


def as_dict(table: pa.Table) -> dict[tuple[Any, ...], tuple[int, int]]:
    keys = ROLLUP_SCHEMA.names[:8]
    return {tuple(r[k] for k in keys): (r["count"], r["errors"]) for r in table.to_pylist()}


def test_rows_with_the_same_key_add_up_across_writes(store: Store) -> None:
    store.write_rollups(rows({"count": 3, "errors": 1}, {"bin": 1400, "count": 2}))
    store.write_rollups(rows({"count": 4, "errors": 2}))
    got = store.rollups(RollupQuery(BASE_NS, BASE_NS + 10 * SECOND))
    assert got.schema == ROLLUP_SCHEMA
    assert as_dict(got) == {
        (BASE_NS, 10, "web", "GET /", 2, "", "", 1380): (7, 3),
        (BASE_NS, 10, "web", "GET /", 2, "", "", 1400): (2, 0),
    }


def test_window_selects_every_bucket_that_overlaps_it(store: Store) -> None:
    store.write_rollups(
        rows(
            {"bucket_start_ns": BASE_NS},
            {"bucket_start_ns": BASE_NS + 10 * SECOND},
            {"bucket_start_ns": BASE_NS + 20 * SECOND},
            {"bucket_start_ns": BASE_NS, "bucket_s": 60, "attr_key": "host.name", "attr_value": "h"},
        )
    )

    def starts(start_ns: int, end_ns: int, attr_key: str | None = None) -> list[int]:
        got = store.rollups(RollupQuery(start_ns, end_ns, attr_key=attr_key))
        return sorted(got.column("bucket_start_ns").to_pylist())

    assert starts(BASE_NS, BASE_NS + 30 * SECOND) == [BASE_NS, BASE_NS + 10 * SECOND, BASE_NS + 20 * SECOND]
    assert starts(BASE_NS + 15 * SECOND, BASE_NS + 16 * SECOND) == [BASE_NS + 10 * SECOND]
    assert starts(BASE_NS + 10 * SECOND, BASE_NS + 20 * SECOND) == [BASE_NS + 10 * SECOND]  # end exclusive
    assert starts(BASE_NS + 30 * SECOND, BASE_NS + 40 * SECOND) == []
    assert starts(BASE_NS + 59 * SECOND, BASE_NS + 61 * SECOND, "host.name") == [BASE_NS]
    assert starts(BASE_NS + 60 * SECOND, BASE_NS + 61 * SECOND, "host.name") == []


def test_filters_by_service_operation_and_attribute_key(store: Store) -> None:
    store.write_rollups(
        rows(
            {},
            {"service": "db", "operation": "SELECT", "kind": 3},
            {"bucket_s": 60, "attr_key": "service.version", "attr_value": "1.0", "count": 5},
            {"bucket_s": 60, "attr_key": "service.version", "attr_value": "2.0", "count": 6},
            {"bucket_s": 60, "attr_key": "host.name", "attr_value": "h1", "count": 7},
        )
    )
    window = (BASE_NS, BASE_NS + 60 * SECOND)
    assert {r["service"] for r in store.rollups(RollupQuery(*window)).to_pylist()} == {"web", "db"}
    assert [r["service"] for r in store.rollups(RollupQuery(*window, service="db")).to_pylist()] == ["db"]
    assert store.rollups(RollupQuery(*window, operation="SELECT")).num_rows == 1
    assert store.rollups(RollupQuery(*window, service="web", operation="SELECT")).num_rows == 0
    versions = store.rollups(RollupQuery(*window, attr_key="service.version"))
    assert sorted((r["attr_value"], r["count"]) for r in versions.to_pylist()) == [("1.0", 5), ("2.0", 6)]
    assert store.rollups(RollupQuery(*window, attr_key="missing")).num_rows == 0


def test_empty_and_invalid_writes(store: Store) -> None:
    store.write_rollups(ROLLUP_SCHEMA.empty_table())
    assert store.rollups(RollupQuery(0, 2**62)).num_rows == 0
    with pytest.raises(ValueError):
        store.write_rollups(rows({}).drop_columns(["bin"]))
    with pytest.raises(ValueError):
        store.write_rollups(rows({"bucket_s": 0}))


def test_values_are_kept_as_they_are(store: Store) -> None:
    odd = 'we"ird\\svc\nname ✓'
    store.write_rollups(rows({"service": odd, "attr_key": "k", "attr_value": "", "bin": -1, "count": 2**40}))
    got = store.rollups(RollupQuery(BASE_NS, BASE_NS + SECOND, service=odd, attr_key="k")).to_pylist()
    assert [(r["service"], r["attr_value"], r["bin"], r["count"]) for r in got] == [(odd, "", -1, 2**40)]


def test_resolution_merges_buckets_into_aligned_steps(store: Store) -> None:
    store.write_rollups(
        rows(
            *(
                {"bucket_start_ns": BASE_NS + i * 10 * SECOND, "count": i + 1, "errors": i % 2}
                for i in range(12)
            ),
            {"bucket_start_ns": BASE_NS, "bin": 1500, "count": 100},
        )
    )
    got = store.rollups(RollupQuery(BASE_NS, BASE_NS + 120 * SECOND, resolution_s=60))
    assert as_dict(got) == {
        (BASE_NS, 60, "web", "GET /", 2, "", "", 1380): (21, 3),
        (BASE_NS + 60 * SECOND, 60, "web", "GET /", 2, "", "", 1380): (57, 3),
        (BASE_NS, 60, "web", "GET /", 2, "", "", 1500): (100, 0),
    }
    whole = store.rollups(RollupQuery(BASE_NS + 30 * SECOND, BASE_NS + 70 * SECOND, resolution_s=3600))
    assert sum(whole.column("count").to_pylist()) == 4 + 5 + 6 + 7
    with pytest.raises(ValueError):
        store.rollups(RollupQuery(BASE_NS, BASE_NS + SECOND, resolution_s=0))


def _summed_over_bins(table: pa.Table) -> dict[tuple[Any, ...], tuple[int, int]]:
    """Each key's count and errors, every bin together."""
    sums: dict[tuple[Any, ...], tuple[int, int]] = {}
    for key, (count, errors) in as_dict(table).items():
        before = sums.get(key[:-1], (0, 0))
        sums[key[:-1]] = (before[0] + count, before[1] + errors)
    return sums


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_read_without_bins_sums_each_key_over_them(store: Store, seed: int) -> None:
    rng = random.Random(seed)
    written = [
        {
            "bucket_start_ns": BASE_NS + rng.randrange(12) * 60 * SECOND,
            "bucket_s": 60,
            "service": rng.choice(["web", "db", "cart"]),
            "operation": rng.choice(["GET /", "SELECT"]),
            "kind": rng.choice([2, 3]),
            "attr_key": "service.version",
            "attr_value": rng.choice(["1.0", "1.1", "2.0"]),
            "bin": rng.randrange(1200, 1600),
            "count": rng.randrange(1, 50),
            "errors": rng.randrange(0, 3),
        }
        for _ in range(400)
    ]
    for part in (written[:150], written[150:]):  # keys repeated across writes add up too
        store.write_rollups(rows(*part))
    window = (BASE_NS + 90 * SECOND, BASE_NS + 600 * SECOND)
    for asked in (
        RollupQuery(*window, attr_key="service.version"),
        RollupQuery(*window, service="web", attr_key="service.version"),
        RollupQuery(*window, attr_key="service.version", resolution_s=300),
        RollupQuery(*window, attr_key="service.version", group_by=("service", "attr_value")),
    ):
        by_bin = store.rollups(asked)
        summed = store.rollups(dataclasses.replace(asked, by_bin=False))
        assert summed.schema == ROLLUP_SCHEMA
        assert set(summed.column("bin").to_pylist()) <= {0}
        # One row per key, whatever the bins were.
        assert summed.num_rows == len(_summed_over_bins(summed))
        assert _summed_over_bins(summed) == _summed_over_bins(by_bin)
        assert summed.num_rows > 0


def test_rows_of_some_span_kinds(store: Store) -> None:
    store.write_rollups(
        rows(
            {"kind": 2, "count": 3},
            {"kind": 3, "count": 5, "errors": 1},
            {"kind": 1, "count": 7},
            {"kind": 3, "bucket_s": 60, "attr_key": "host.name", "attr_value": "h", "count": 11},
        )
    )
    window = (BASE_NS, BASE_NS + 10 * SECOND)

    def total(query: RollupQuery) -> int:
        return sum(store.rollups(query).column("count").to_pylist())

    assert total(RollupQuery(*window)) == 15
    assert total(RollupQuery(*window, kinds=(3,))) == 5
    assert total(RollupQuery(*window, kinds=(2, 1))) == 10
    assert total(RollupQuery(*window, kinds=(4,))) == 0
    assert total(RollupQuery(*window, attr_key="host.name", kinds=(3,))) == 11
    assert total(RollupQuery(*window, group_by=("service",), resolution_s=60, kinds=(3,))) == 5
    assert total(RollupQuery(*window, kinds=(3,), by_bin=False)) == 5

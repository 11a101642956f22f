"""Rollup storage, for every backend: appended rows add up by key, and window and filters select buckets."""

from __future__ import annotations

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

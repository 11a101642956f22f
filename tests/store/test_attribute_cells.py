"""``summed_cells`` against the definition (a dictionary of sums), on random spans: dense counts, bins renumbered
when their range is too wide, the sorted path past the dense bound, steps, uneven weights, many batches."""

from __future__ import annotations

import collections

import numpy as np
import pyarrow as pa
import pytest

import spyglass.store.attribute_cells as attribute_cells
from spyglass.store.attribute_cells import ATTRIBUTE_CELL_SCHEMA, summed_cells

STEP_NS = 10_000_000_000


def random_coded(rng: np.random.Generator, rows: int, *, one_weight: bool, zero_bins: bool) -> pa.Table:
    bins = rng.integers(900, 1400, rows).astype(np.int16)
    if zero_bins:
        bins[rng.random(rows) < 0.05] = -1  # zero durations, far below the rest
    weights = np.full(rows, 2.0) if one_weight else rng.choice([1.0, 4.0, 20.0], rows)
    return pa.table(
        {
            "code": pa.array(rng.integers(0, 300, rows).astype(np.int32)),
            "start_ns": pa.array(1_700_000_000_000_000_000 + rng.integers(0, 60 * STEP_NS, rows)),
            "bin": pa.array(bins),
            "sample_weight": pa.array(weights),
            "failed": pa.array(rng.random(rows) < 0.1),
        }
    )


def expected(
    spans: pa.Table, dictionary: list[str], window_ns: int, step_ns: int | None
) -> list[tuple[object, ...]]:
    sums: dict[tuple[object, ...], list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for row in spans.to_pylist():
        start = window_ns if step_ns is None else row["start_ns"] - row["start_ns"] % step_ns
        cell = sums[(dictionary[row["code"]], start, row["bin"])]
        cell[0] += row["sample_weight"]
        cell[1] += row["sample_weight"] if row["failed"] else 0.0
    return sorted((*key, pytest.approx(w), pytest.approx(e)) for key, (w, e) in sums.items())


@pytest.mark.parametrize("dense_cells", [1 << 23, 200_000, 1_000])
@pytest.mark.parametrize("step_ns", [None, STEP_NS])
@pytest.mark.parametrize("one_weight", [True, False])
def test_summed_cells_are_the_sums_by_value_step_and_bin(
    monkeypatch: pytest.MonkeyPatch, dense_cells: int, step_ns: int | None, one_weight: bool
) -> None:
    monkeypatch.setattr(attribute_cells, "_DENSE_CELLS", dense_cells)
    rng = np.random.default_rng(dense_cells + (step_ns or 0) % 97 + one_weight)
    spans = pa.concat_tables(
        [random_coded(rng, rows, one_weight=one_weight, zero_bins=True) for rows in (3000, 1, 2500)]
    )
    dictionary = [f"v{i}" for i in range(300)]
    window_ns = 1_700_000_000_000_000_000 - 5
    got = summed_cells(spans, pa.array(dictionary), window_ns, step_ns)
    assert got.schema.equals(ATTRIBUTE_CELL_SCHEMA)
    assert sorted(tuple(row.values()) for row in got.to_pylist()) == expected(
        spans, dictionary, window_ns, step_ns
    )


def test_no_spans_no_cells() -> None:
    empty = random_coded(np.random.default_rng(0), 0, one_weight=True, zero_bins=False)
    assert summed_cells(empty, pa.array(["a"]), 0, None).num_rows == 0

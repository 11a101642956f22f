"""``summed_cells`` against the definition (a dictionary of sums), on random spans: dense counts, bins renumbered
when their range is too wide, the sorted path past the dense bound, steps, uneven weights, one weight given
instead of a column, many batches; and with the quietest values folded (``top_values``), against summing first
and folding after."""

from __future__ import annotations

import collections

import numpy as np
import pyarrow as pa
import pytest

import spyglass.store.attribute_cells as attribute_cells
from spyglass.store.attribute_cells import ATTRIBUTE_CELL_SCHEMA, summed_cells
from spyglass.store.top_values import TopValues
from tests.support.folding import cell_rows, folded, kept_values

STEP_NS = 10_000_000_000
OTHER = "__other__"


def random_coded(rng: np.random.Generator, rows: int, *, one_weight: bool, zero_bins: bool) -> pa.Table:
    bins = rng.integers(900, 1400, rows).astype(np.int32)
    if zero_bins:
        bins[rng.random(rows) < 0.05] = -1  # zero durations, far below the rest
    weights = np.full(rows, 2.0) if one_weight else rng.choice([1.0, 4.0, 20.0], rows)
    # Codes skewed as attribute values are (a few busy, many rare), so that folding has something to choose.
    codes = np.minimum(rng.zipf(1.3, rows) - 1, 299)
    return pa.table(
        {
            "code": pa.array(codes.astype(np.int32)),
            "start_ns": pa.array(1_700_000_000_000_000_000 + rng.integers(0, 60 * STEP_NS, rows)),
            "outcome": pa.array(bins * 2 + (rng.random(rows) < 0.1)),
            "sample_weight": pa.array(weights),
        }
    )


def expected(
    spans: pa.Table, dictionary: list[str], window_ns: int, step_ns: int | None
) -> list[tuple[object, ...]]:
    sums: dict[tuple[object, ...], list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for row in spans.to_pylist():
        start = window_ns if step_ns is None else row["start_ns"] - row["start_ns"] % step_ns
        cell = sums[(dictionary[row["code"]], start, row["outcome"] >> 1)]
        cell[0] += row["sample_weight"]
        cell[1] += row["sample_weight"] if row["outcome"] & 1 else 0.0
    return sorted((*key, pytest.approx(w), pytest.approx(e)) for key, (w, e) in sums.items())


def some_spans(seed: int, one_weight: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.concat_tables(
        [random_coded(rng, rows, one_weight=one_weight, zero_bins=True) for rows in (3000, 1, 2500)]
    )


DICTIONARY = [f"v{i}" for i in range(300)]
WINDOW_NS = 1_700_000_000_000_000_000 - 5


@pytest.mark.parametrize("dense_cells", [1 << 23, 200_000, 1_000])
@pytest.mark.parametrize("step_ns", [None, STEP_NS])
@pytest.mark.parametrize("one_weight", [True, False])
def test_summed_cells_are_the_sums_by_value_step_and_bin(
    monkeypatch: pytest.MonkeyPatch, dense_cells: int, step_ns: int | None, one_weight: bool
) -> None:
    monkeypatch.setattr(attribute_cells, "_DENSE_CELLS", dense_cells)
    spans = some_spans(dense_cells + (step_ns or 0) % 97 + one_weight, one_weight)
    got = summed_cells(spans, pa.array(DICTIONARY), WINDOW_NS, step_ns)
    assert got.schema.equals(ATTRIBUTE_CELL_SCHEMA)
    assert sorted(tuple(row.values()) for row in got.to_pylist()) == expected(
        spans, DICTIONARY, WINDOW_NS, step_ns
    )


def test_one_weight_given_stands_for_the_column() -> None:
    spans = some_spans(5, one_weight=True)
    got = summed_cells(
        spans.drop_columns(["sample_weight"]), pa.array(DICTIONARY), WINDOW_NS, None, weight=2.0
    )
    assert sorted(tuple(row.values()) for row in got.to_pylist()) == expected(
        spans, DICTIONARY, WINDOW_NS, None
    )


@pytest.mark.parametrize("dense_cells", [1 << 23, 1_000])
@pytest.mark.parametrize("step_ns", [None, STEP_NS])
@pytest.mark.parametrize("one_weight", [True, False])
@pytest.mark.parametrize("limit", [2, 12, 1000])
def test_folded_cells_are_the_cells_summed_then_folded(
    monkeypatch: pytest.MonkeyPatch, dense_cells: int, step_ns: int | None, one_weight: bool, limit: int
) -> None:
    """Read as the last part after another was added: the choice is over both, and both fold alike. One value
    of the data is named as the fold (it takes the folded ones in, and is never kept)."""
    monkeypatch.setattr(attribute_cells, "_DENSE_CELLS", dense_cells)
    seed = dense_cells % 7 + limit + one_weight
    dictionary = [*DICTIONARY[:-1], OTHER]
    spans = some_spans(seed, one_weight)
    earlier = summed_cells(some_spans(seed + 100, one_weight), pa.array(dictionary), WINDOW_NS, step_ns)
    whole = summed_cells(spans, pa.array(dictionary), WINDOW_NS, step_ns)
    kept = kept_values([cell_rows(earlier), cell_rows(whole)], limit, OTHER)
    top = TopValues(limit, OTHER)
    top.add(earlier)
    got = summed_cells(spans, pa.array(dictionary), WINDOW_NS, step_ns, top)
    assert folded(cell_rows(got), None, OTHER) == folded(cell_rows(whole), kept, OTHER)
    assert folded(cell_rows(top.fold(earlier)), None, OTHER) == folded(cell_rows(earlier), kept, OTHER)
    if kept is not None:
        assert len(set(got.column("value").to_pylist())) <= limit


def test_no_spans_no_cells() -> None:
    empty = random_coded(np.random.default_rng(0), 0, one_weight=True, zero_bins=False)
    assert summed_cells(empty, pa.array(["a"]), 0, None).num_rows == 0

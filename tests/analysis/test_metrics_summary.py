"""Summing rollup cells per group and bin before the quantiles changes nothing in the answer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spyglass.analysis import metrics
from spyglass.analysis.metrics import _summed_by_bin
from spyglass.model.sketch import grouped_quantiles

QS = (0.5, 0.9, 0.99)
_CELL = st.tuples(st.integers(-1, 5), st.integers(-40, 3000), st.integers(1, 1000))


@settings(max_examples=200, deadline=None)
@given(st.lists(_CELL, min_size=1, max_size=200))
def test_quantiles_of_summed_cells_are_those_of_the_cells(cells: list[tuple[int, int, int]]) -> None:
    group = np.array([g for g, _, _ in cells], np.int64)
    bins = np.array([b for _, b, _ in cells], np.int64)
    counts = np.array([c for _, _, c in cells], np.float64)
    keep = group >= 0
    expected = grouped_quantiles(group[keep], bins[keep], counts[keep], QS)
    summed = grouped_quantiles(*_summed_by_bin(group, bins, counts), QS)
    for want, got in zip(expected, summed, strict=True):
        np.testing.assert_allclose(got, want)


def test_summed_cells_come_ordered_by_group_then_bin_without_negative_groups() -> None:
    group = np.array([2, 0, 2, -1, 0, 2], np.int64)
    bins = np.array([7, 3, 7, 1, 1, -2], np.int64)
    counts = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    groups, summed_bins, summed = _summed_by_bin(group, bins, counts)
    assert groups.tolist() == [0, 0, 2, 2]
    assert summed_bins.tolist() == [1, 3, -2, 7]
    assert summed.tolist() == [5.0, 2.0, 6.0, 4.0]


def test_sparse_cells_are_summed_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    group = rng.integers(-1, 50, 5000)
    bins = rng.integers(-100, 50_000, 5000)  # 51 x 50,100 cells: dense
    counts = rng.integers(1, 9, 5000).astype(np.float64)
    dense = _summed_by_bin(group, bins, counts)
    monkeypatch.setattr(metrics, "_DENSE_CELLS", 1)
    sparse = _summed_by_bin(group, bins, counts)
    for a, b in zip(dense, sparse, strict=True):
        np.testing.assert_array_equal(a, b)

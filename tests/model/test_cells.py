"""``distinct_cells`` answers as ``numpy.unique(cells, return_inverse=True)`` does, on either path."""

from __future__ import annotations

import numpy as np
import pytest

from spyglass.model.cells import distinct_cells


@pytest.mark.parametrize("seed", range(12))
def test_the_cells_and_each_rows_index_are_numpys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(1, 50_000))
    # Small groups and bins take the radix path; some seeds need the comparison sort (groups past 2^16).
    groups = int(rng.choice([3, 5_000, 70_000, 1 << 20]))
    width = int(rng.choice([1, 40, 6_400, 70_000]))
    group = rng.integers(0, groups, rows).astype(np.int64)
    offsets = rng.integers(0, width, rows).astype(np.int64)
    present, inverse = distinct_cells(group * width + offsets, group, offsets, width)
    expected, expected_inverse = np.unique(group * width + offsets, return_inverse=True)
    assert present.dtype == np.int64 and inverse.dtype == np.int64
    assert np.array_equal(present, expected)
    assert np.array_equal(inverse, expected_inverse.reshape(-1))


def test_sums_by_cell_come_out_in_cell_order() -> None:
    group = np.array([2, 0, 2, 1, 0, 2], np.int64)
    offsets = np.array([5, 1, 5, 0, 3, 1], np.int64)
    counts = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    present, inverse = distinct_cells(group * 10 + offsets, group, offsets, 10)
    assert present.tolist() == [1, 3, 10, 21, 25]
    assert np.bincount(inverse, weights=counts).tolist() == [2.0, 5.0, 4.0, 6.0, 4.0]


def test_no_rows_no_cells() -> None:
    empty = np.zeros(0, np.int64)
    present, inverse = distinct_cells(empty, empty, empty, 7)
    assert present.size == 0 and inverse.size == 0

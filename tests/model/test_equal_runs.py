"""Runs of equal values (``spyglass.model.equal_runs``): where runs start in numpy arrays, and runs of equal rows
over Arrow columns, maps compared entry by entry."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from spyglass.model.equal_runs import equal_runs, run_starts


@given(st.lists(st.integers(-(2**62), 2**62), max_size=200), st.integers(1, 4))
def test_run_starts_are_where_a_value_differs_from_the_one_before(values: list[int], spread: int) -> None:
    array = np.array([v // spread for v in values], dtype=np.int64)
    expected = [i for i in range(len(array)) if i == 0 or array[i] != array[i - 1]]
    assert run_starts(array).tolist() == expected


def test_run_starts_of_nothing_and_of_one() -> None:
    assert run_starts(np.empty(0, np.int64)).tolist() == []
    assert run_starts(np.array([7])).tolist() == [0]
    assert run_starts(np.array([3, 3, 1, 1, 3])).tolist() == [
        0,
        2,
        4,
    ]  # unsorted: a value seen again starts again


def test_equal_rows_share_a_run_and_maps_are_compared_entry_by_entry() -> None:
    service = pa.array(["a", "a", "a", "b", "b", None, None])
    resource = pa.array(
        [
            [("k", "1")],
            [("k", "1")],
            [("k", "2")],  # another value
            [("k", "2")],  # another service
            [("k", "2"), ("j", "1")],  # another entry
            None,
            None,
        ],
        pa.map_(pa.string(), pa.string()),
    )
    index, first = equal_runs([service, resource])
    assert index.tolist() == [0, 0, 1, 2, 3, 4, 4]
    assert first.tolist() == [0, 2, 3, 4, 5]

"""``TopValues``: which values an answer names, chosen once over every part of a window (the busiest, ties by
name, the fold's own name never), and parts folded by that one choice whatever order they come in."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from spyglass.store.attribute_cells import ATTRIBUTE_CELL_SCHEMA
from spyglass.store.top_values import TopValues, busiest
from tests.support.folding import cell_rows, folded, kept_values

OTHER = "__other__"


def cells(rows: list[tuple[str, int, int, float, float]]) -> pa.Table:
    values, starts, bins, weights, errors = (list(c) for c in zip(*rows, strict=True))
    return pa.table(
        {
            "value": pa.array(values).dictionary_encode(),
            "start_ns": starts,
            "bin": bins,
            "weight": weights,
            "error_weight": errors,
        },
    ).cast(ATTRIBUTE_CELL_SCHEMA)


def test_the_busiest_are_kept_ties_by_name_and_never_the_fold() -> None:
    names = pa.array(["d", OTHER, "b", "a", "c", "e"])
    totals = np.array([5.0, 100.0, 7.0, 5.0, 5.0, 0.0])
    assert busiest(names, totals, 6, OTHER) is None  # five with a total: every one keeps its name
    kept = busiest(names, totals, 3, OTHER)
    assert kept is not None and sorted(names.take(pa.array(kept)).to_pylist()) == ["a", "b"]


def test_parts_added_and_the_last_fold_alike() -> None:
    first = cells([("a", 0, 1, 10.0, 1.0), ("b", 0, 1, 1.0, 0.0), ("c", 0, 2, 4.0, 0.0)])
    last = cells(
        [("b", 0, 1, 2.0, 0.0), ("c", 0, 1, 3.0, 1.0), ("d", 0, 1, 5.0, 0.0), (OTHER, 0, 1, 1.0, 0.0)]
    )
    top = TopValues(3, OTHER)
    top.add(first)
    got_last = top.settle(last)
    with pytest.raises(RuntimeError):
        top.add(first)
    kept = kept_values([cell_rows(first), cell_rows(last)], 3, OTHER)
    assert kept == {"a", "c"}  # a 10, c 7, d 5, b 3
    assert folded(cell_rows(got_last), None, OTHER) == folded(cell_rows(last), kept, OTHER)
    assert folded(cell_rows(top.fold(first)), None, OTHER) == folded(cell_rows(first), kept, OTHER)
    assert got_last.schema.equals(ATTRIBUTE_CELL_SCHEMA)


def test_few_values_need_no_totals_and_keep_their_names() -> None:
    top = TopValues(4, OTHER)
    top.add(cells([("a", 0, 1, 1.0, 0.0)]))
    assert not top.needs_totals(3)  # four at most, whatever they are
    part = cells([("b", 0, 1, 1.0, 0.0), ("c", 0, 1, 2.0, 0.0)])
    assert top.fold(part) is part and top.choose(pa.array(["b"]), np.array([1.0])) is None


def test_folding_before_choosing_is_refused() -> None:
    with pytest.raises(RuntimeError):
        TopValues(2, OTHER).fold(cells([("a", 0, 1, 1.0, 0.0)]))

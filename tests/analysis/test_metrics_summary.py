"""Summing rollup cells per group and bin before the quantiles changes nothing in the answer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spyglass.analysis import metrics
from spyglass.model import cells as cells_module
from spyglass.model.cells import summed_by_bin
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
    summed = grouped_quantiles(*summed_by_bin(group, bins, counts), QS, ordered=True)
    for want, got in zip(expected, summed, strict=True):
        np.testing.assert_allclose(got, want)


def test_summed_cells_come_ordered_by_group_then_bin_without_negative_groups() -> None:
    group = np.array([2, 0, 2, -1, 0, 2], np.int64)
    bins = np.array([7, 3, 7, 1, 1, -2], np.int64)
    counts = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    groups, summed_bins, summed = summed_by_bin(group, bins, counts)
    assert groups.tolist() == [0, 0, 2, 2]
    assert summed_bins.tolist() == [1, 3, -2, 7]
    assert summed.tolist() == [5.0, 2.0, 6.0, 4.0]


def test_sparse_cells_are_summed_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    group = rng.integers(-1, 50, 5000)
    bins = rng.integers(-100, 50_000, 5000)  # 51 x 50,100 cells: dense
    counts = rng.integers(1, 9, 5000).astype(np.float64)
    dense = summed_by_bin(group, bins, counts)
    monkeypatch.setattr(cells_module, "DENSE_CELLS", 1)
    sparse = summed_by_bin(group, bins, counts)
    for a, b in zip(dense, sparse, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_each_point_of_a_series_is_the_summary_of_its_step_alone(seed: int, exact: bool) -> None:
    """The series' points are built from arrays at once: each equals ``summarize`` over that step's cells
    alone, and a step without cells is empty."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    n, step_s, start = 4000, 60, 1_699_999_980 * 10**9  # steps are aligned to the epoch
    labels = pa.array([f"v{i}" for i in rng.integers(0, 12, n)])
    # Steps 0-9 of the window, the eighth left empty.
    step = rng.choice([s for s in range(10) if s != 7], n)
    times = start + step * step_s * 10**9 + rng.integers(0, step_s * 10**9, n)
    bins = rng.integers(-1, 900, n)
    counts = rng.random(n) * 4
    errors = np.where(rng.random(n) < 0.1, counts, 0.0)
    cells = metrics._Cells(labels, times.astype(np.int64), bins.astype(np.int64), counts, errors)
    end = start + 10 * step_s * 10**9
    groups = metrics.summarize(cells, start, end, step_s, exact=exact)
    assert len(groups) == 12
    for group in groups:
        assert len(group["series"]) == 10
        for index, point in enumerate(group["series"]):
            chosen = (step == index) & (labels.to_numpy(zero_copy_only=False) == group["key"])
            alone = metrics._Cells(
                labels.filter(pa.array(chosen)), times[chosen], bins[chosen], counts[chosen], errors[chosen]
            )
            summary = metrics.summarize(alone, start, end, None, exact=exact)
            expected = summary[0] if summary else metrics._summary(0.0, 0.0, None, None, exact)
            expected = {k: v for k, v in expected.items() if k != "key"}
            assert point == {"start_ns": start + index * step_s * 10**9, **expected}


def _labelled_cells(labels: list[str | None], counts: list[float], errors: list[float]) -> metrics._Cells:
    import pyarrow as pa

    n = len(labels)
    bins = np.arange(n, dtype=np.int64) * 7 % 500
    return metrics._Cells(
        pa.array(labels, pa.string()),
        np.full(n, 1_700_000_000 * 10**9, np.int64),
        bins,
        np.asarray(counts, np.float64),
        np.asarray(errors, np.float64),
    )


@pytest.mark.parametrize("had_other", [False, True])
def test_past_the_group_limit_the_quietest_labels_are_summed_as_other(
    monkeypatch: pytest.MonkeyPatch, had_other: bool
) -> None:
    monkeypatch.setattr(metrics, "MAX_GROUPS", 5)
    rng = np.random.default_rng(4)
    labels: list[str | None] = [f"user-{i}" for i in range(40)] * 3 + [None] * 5
    if had_other:
        labels[-1] = "__other__"
    counts = rng.integers(1, 1000, len(labels)).astype(np.float64).tolist()
    errors = [c if i % 4 == 0 else 0.0 for i, c in enumerate(counts)]
    start, end = 1_700_000_000 * 10**9, 1_700_000_060 * 10**9
    cells = _labelled_cells(labels, counts, errors)
    everything = {g["key"]: g for g in metrics.summarize(cells, start, end, None, exact=True)}
    monkeypatch.setattr(metrics, "MAX_GROUPS", 10_000)
    unfolded = {g["key"]: g for g in metrics.summarize(cells, start, end, None, exact=True)}
    assert len(everything) == 5 and "__other__" in everything
    busiest = sorted((k for k in unfolded if k != "__other__"), key=lambda k: -unfolded[k]["count"])[:4]
    for key in busiest:
        assert everything[key] == unfolded[key]
    folded = [g for k, g in unfolded.items() if k not in busiest]
    other = everything["__other__"]
    assert other["count"] == sum(g["count"] for g in folded)
    assert other["errors"] == sum(g["errors"] for g in folded)
    assert other["max_ms"] == max(g["max_ms"] for g in folded)
    assert sum(g["count"] for g in everything.values()) == sum(g["count"] for g in unfolded.values())


def test_up_to_the_group_limit_every_label_is_its_own_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "MAX_GROUPS", 5)
    cells = _labelled_cells(["a", "b", "c", "d", "e", "a"], [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 1])
    groups = metrics.summarize(cells, 0, 60 * 10**9, None, exact=True)
    assert [g["key"] for g in groups] == ["a", "e", "d", "c", "b"] and groups[0]["count"] == 7

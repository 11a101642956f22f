"""The latency sketch: every quantile within 1% of the exact one, and merging equals sketching the union."""

from __future__ import annotations

from typing import cast

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from spyglass.model.sketch import (
    ALPHA,
    ZERO_BIN,
    bucket_index,
    bucket_value,
    grouped_quantiles,
    max_value,
    merge,
    quantiles,
    sketch_of,
)

QS = np.array([0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0])


def exact_quantiles(durations: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """numpy's exact nearest-rank quantiles (the sorted duration at 1-based rank ceil(q * n))."""
    return cast(np.ndarray, np.quantile(durations, qs, method="inverted_cdf").astype(np.float64))


def lognormal(seed: int, n: int, mu: float, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(1, rng.lognormal(mu, sigma, n)).astype(np.int64)


def bimodal(seed: int, n: int, fast_ns: float, ratio: float, slow_share: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    slow = rng.random(n) < slow_share
    values = np.where(
        slow, rng.normal(fast_ns * ratio, fast_ns * ratio * 0.1, n), rng.normal(fast_ns, fast_ns * 0.1, n)
    )
    return np.maximum(1, values).astype(np.int64)


datasets = st.one_of(
    st.builds(
        lognormal,
        st.integers(0, 2**32),
        st.integers(1, 5000),
        st.floats(3, 22),
        st.floats(0.01, 3),
    ),
    st.builds(
        bimodal,
        st.integers(0, 2**32),
        st.integers(1, 5000),
        st.floats(1e3, 1e9),
        st.floats(2, 100),
        st.floats(0, 1),
    ),
)


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    relative = np.abs(got - want) / np.maximum(want, 1e-12)
    assert (relative <= 0.01).all(), (got, want, relative.max())


@settings(max_examples=150, deadline=None)
@given(datasets)
def test_quantiles_within_one_percent_of_exact(durations: np.ndarray) -> None:
    indices, counts = sketch_of(durations)
    assert_close(quantiles(indices, counts, QS), exact_quantiles(durations, QS))
    assert abs(max_value(indices, counts) - durations.max()) <= ALPHA * durations.max() + 1e-9


@settings(max_examples=100, deadline=None)
@given(st.lists(datasets, min_size=1, max_size=5))
def test_merge_equals_sketch_of_union(parts: list[np.ndarray]) -> None:
    union = np.concatenate(parts)
    merged_indices, merged_counts = merge(*(sketch_of(part) for part in parts))
    union_indices, union_counts = sketch_of(union)
    assert np.array_equal(merged_indices, union_indices)
    assert np.array_equal(merged_counts, union_counts)
    assert_close(quantiles(merged_indices, merged_counts, QS), exact_quantiles(union, QS))


@settings(max_examples=50, deadline=None)
@given(st.lists(datasets, min_size=1, max_size=6))
def test_grouped_quantiles_match_one_sketch_per_group(parts: list[np.ndarray]) -> None:
    groups = np.concatenate([np.full(len(part), g) for g, part in enumerate(parts)])
    bins = bucket_index(np.concatenate(parts))
    ids, totals, values, maxima = grouped_quantiles(groups, bins, np.ones(len(bins)), QS)
    assert ids.tolist() == list(range(len(parts)))
    for g, part in enumerate(parts):
        assert totals[g] == len(part)
        assert_close(values[g], exact_quantiles(part, QS))
        assert maxima[g] == max_value(*sketch_of(part))


def test_every_value_of_a_bin_is_within_alpha_of_what_the_bin_stands_for() -> None:
    durations = np.unique(np.concatenate([np.arange(1, 5000), np.geomspace(1, 9e18, 20000).astype(np.int64)]))
    represented = bucket_value(bucket_index(durations))
    assert (np.abs(represented - durations) / durations <= ALPHA * (1 + 1e-9)).all()


def test_zero_and_negative_durations_have_their_own_bin() -> None:
    indices = bucket_index(np.array([0, -5, 1, 2**62], dtype=np.int64))
    assert indices.tolist()[:2] == [ZERO_BIN, ZERO_BIN]
    assert indices[2] == 0 and indices[3] > 0
    assert indices.dtype == np.int16
    assert bucket_value(ZERO_BIN) == 0.0
    bins, counts = sketch_of(np.array([0, 0, 0, 100]))
    assert quantiles(bins, counts, [0.5]).tolist() == [0.0]


def test_weighted_counts_and_empty_sketches() -> None:
    assert np.isnan(quantiles([], [], [0.5])).all()
    # Weights act as repeated durations: 1 ms weighing 3 and 10 ms weighing 1 -> median 1 ms.
    bins = bucket_index(np.array([1_000_000, 10_000_000]))
    median = quantiles(bins, np.array([3.0, 1.0]), [0.5])[0]
    assert abs(median - 1e6) / 1e6 <= ALPHA


def test_rank_definition_is_numpys_inverted_cdf() -> None:
    durations = np.arange(1, 101) * 1_000_000  # 1..100 ms
    bins, counts = sketch_of(durations)
    got = quantiles(bins, counts, [0.0, 0.29, 0.5, 0.99, 1.0]) / 1e6
    for value, want in zip(got.tolist(), [1, 29, 50, 99, 100], strict=True):
        assert abs(value - want) <= want * ALPHA


def test_bins_are_looked_up_as_the_formula_gives_them_whatever_their_type() -> None:
    """``bucket_value`` of integer bins comes from a table; floats, and integers past ``int16``, are computed."""
    every = np.arange(np.iinfo(np.int16).min, np.iinfo(np.int16).max + 1, dtype=np.int64)
    gamma = (1 + ALPHA) / (1 - ALPHA)
    with np.errstate(over="ignore"):
        formula = np.where(every <= ZERO_BIN, 0.0, 2.0 * gamma ** every.astype(np.float64) / (gamma + 1.0))
    assert np.array_equal(bucket_value(every), formula)
    assert np.array_equal(bucket_value(every.astype(np.int16)), formula)
    assert np.array_equal(bucket_value(every.astype(np.float64)), formula)
    wide = np.array([40_000, -40_000], dtype=np.int64)
    with np.errstate(over="ignore"):
        assert np.array_equal(
            bucket_value(wide), np.where(wide <= ZERO_BIN, 0.0, 2.0 * gamma**wide / (gamma + 1.0))
        )
    assert bucket_value(np.empty((0, 2), np.int16)).shape == (0, 2)
    assert bucket_value(np.ones((2, 3), np.int64)).shape == (2, 3)

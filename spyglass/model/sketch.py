"""A DDSketch-style latency sketch: durations fall into logarithmic bins, so any quantile of any merge of
sketches is within ``ALPHA`` relative error, and merging is summing counts per bin.

A sketch is just ``(bin indices, counts)``: the aggregator stores it as rows of a rollup table and the analysis
merges rows by summing, so there is no sketch object to serialize. Everything here works on whole numpy arrays.

Bin ``i >= 0`` holds durations in ``(GAMMA ** (i - 1), GAMMA ** i]`` nanoseconds and stands for the value
``2 * GAMMA ** i / (GAMMA + 1)``, which is within ``ALPHA`` of every duration in the bin. Durations of zero or
less (clock skew, instant spans) go to ``ZERO_BIN``, which stands for 0. With ``ALPHA = 0.005`` a duration of a
whole year lands in bin ~3,600, so indices fit ``int16``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from spyglass.model.equal_runs import run_starts

#: Relative accuracy of every value the sketch returns (0.5%: half the 1% the API promises, as margin).
ALPHA = 0.005
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
#: The bin of durations <= 0; it stands for 0 ns.
ZERO_BIN = -1
#: dtype of bin indices, in memory, in rollup rows and on disk.
BIN_DTYPE = np.int16

IntArray = npt.NDArray[np.integer]
FloatArray = npt.NDArray[np.float64]


#: ``bucket_index`` of a ``duration_ns`` column in SQL (DuckDB), for stores that sum bins themselves.
BIN_SQL = (
    f"(CASE WHEN duration_ns > 0 THEN ceil(ln(duration_ns) / {_LOG_GAMMA!r}) ELSE {ZERO_BIN} END)::SMALLINT"
)


def bucket_index(durations_ns: npt.ArrayLike) -> npt.NDArray[np.int16]:
    """The bin of each duration (``ZERO_BIN`` for durations <= 0)."""
    durations = np.asarray(durations_ns, dtype=np.float64)
    positive = durations > 0
    # log of a non-positive value is computed only where masked out, so no warnings and no NaN leak through.
    logs = np.log(durations, where=positive, out=np.zeros_like(durations))
    indices = np.ceil(logs / _LOG_GAMMA)
    return np.where(positive, indices, ZERO_BIN).astype(BIN_DTYPE)


def _values_of(indices: FloatArray) -> FloatArray:
    values = 2.0 * np.power(GAMMA, indices) / (GAMMA + 1.0)
    return np.where(indices <= ZERO_BIN, 0.0, values)


_LOWEST_BIN = int(np.iinfo(BIN_DTYPE).min)
#: ``bucket_value`` of every bin ``BIN_DTYPE`` holds (512 KiB), so that bins are looked up, not raised to a power:
#: a query's millions of rollup rows took 5-10 ns a value (more on numpy's AVX2 kernels), a lookup takes 1.
_BIN_VALUES = _values_of(np.arange(_LOWEST_BIN, int(np.iinfo(BIN_DTYPE).max) + 1, dtype=np.float64))


def bucket_value(index: npt.ArrayLike) -> FloatArray:
    """The duration (ns) each bin stands for: within ``ALPHA`` of everything in it; 0 for ``ZERO_BIN``."""
    indices = np.asarray(index)
    if indices.dtype.kind in "iu":
        offsets = indices.astype(np.int64, copy=False) - _LOWEST_BIN
        if offsets.size == 0 or (int(offsets.min()) >= 0 and int(offsets.max()) < _BIN_VALUES.size):
            return _BIN_VALUES.take(offsets)
    return _values_of(indices.astype(np.float64))


def sketch_of(durations_ns: npt.ArrayLike) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int64]]:
    """The sketch of some durations: sorted distinct bins and how many durations fell in each."""
    indices, counts = np.unique(bucket_index(durations_ns), return_counts=True)
    return indices.astype(BIN_DTYPE), counts.astype(np.int64)


def merge(*sketches: tuple[IntArray, npt.NDArray[np.number]]) -> tuple[npt.NDArray[np.int16], FloatArray]:
    """Merge sketches by summing counts per bin; the result has sorted distinct bins."""
    if not sketches:
        return np.empty(0, BIN_DTYPE), np.empty(0, np.float64)
    indices = np.concatenate([np.asarray(s[0], dtype=np.int64) for s in sketches])
    counts = np.concatenate([np.asarray(s[1], dtype=np.float64) for s in sketches])
    distinct, inverse = np.unique(indices, return_inverse=True)
    merged = np.bincount(inverse, weights=counts, minlength=len(distinct)).astype(np.float64)
    return distinct.astype(BIN_DTYPE), merged


def quantiles(indices: npt.ArrayLike, counts: npt.ArrayLike, qs: Sequence[float] | FloatArray) -> FloatArray:
    """Quantiles (ns) of the sketch ``(indices, counts)``; bins may repeat and come in any order.

    The definition is nearest rank: for ``n`` durations the q-quantile is the smallest duration with at least
    ``q * n`` durations at or below it, i.e. the sorted duration at 1-based rank ``max(1, ceil(q * n))``
    (numpy's ``method="inverted_cdf"``); the answer is within ``ALPHA`` of it. Counts may be weights
    (non-integer). NaN for an empty sketch.
    """
    q = np.asarray(qs, dtype=np.float64)
    bins = np.asarray(indices, dtype=np.int64)
    weights = np.asarray(counts, dtype=np.float64)
    keep = weights > 0
    bins, weights = bins[keep], weights[keep]
    if bins.size == 0:
        return np.full(q.shape, np.nan)
    order = np.argsort(bins, kind="stable")
    bins, weights = bins[order], weights[order]
    cumulative = np.cumsum(weights)
    # The first bin whose cumulative count reaches the rank holds the duration of that rank.
    positions = np.searchsorted(cumulative, _rank_targets(np.clip(q, 0.0, 1.0) * cumulative[-1]), side="left")
    positions = np.minimum(positions, bins.size - 1)
    return bucket_value(bins[positions])


def _rank_targets(ranks: FloatArray) -> FloatArray:
    """``q * n`` a hair lower, so that a product meant to be the integer k (0.29 * 100) and computed as
    k + 1e-14 still selects rank k."""
    return ranks * (1.0 - 1e-12)


def max_value(indices: npt.ArrayLike, counts: npt.ArrayLike) -> float:
    """The largest duration (ns) in the sketch, within ``ALPHA``; NaN when empty."""
    bins = np.asarray(indices, dtype=np.int64)[np.asarray(counts, dtype=np.float64) > 0]
    return float(bucket_value(bins.max())) if bins.size else math.nan


def grouped_quantiles(
    groups: npt.ArrayLike,
    indices: npt.ArrayLike,
    counts: npt.ArrayLike,
    qs: Sequence[float] | FloatArray,
    *,
    ordered: bool = False,
) -> tuple[npt.NDArray[np.int64], FloatArray, FloatArray, FloatArray]:
    """Quantiles of many sketches at once, one per group id, without a Python loop per group.

    Returns ``(group ids, total counts, quantiles (groups x qs, ns), max values (ns))``, groups sorted, only
    groups with a positive count; same definition as ``quantiles``. ``ordered``: the pairs come sorted by group,
    then bin, already (the sort was most of the time for millions of pairs).
    """
    q = np.clip(np.asarray(qs, dtype=np.float64), 0.0, 1.0)
    group = np.asarray(groups, dtype=np.int64)
    bins = np.asarray(indices, dtype=np.int64)
    weights = np.asarray(counts, dtype=np.float64)
    keep = weights > 0
    group, bins, weights = group[keep], bins[keep], weights[keep]
    if group.size == 0:
        empty = np.empty(0, np.float64)
        return np.empty(0, np.int64), empty, np.empty((0, q.size)), empty
    if not ordered:
        order = np.lexsort((bins, group))
        group, bins, weights = group[order], bins[order], weights[order]
    starts = run_starts(group)
    ends = np.append(starts[1:], group.size)
    cumulative = np.cumsum(weights)
    totals = np.add.reduceat(weights, starts)
    before = cumulative[starts] - weights[starts]
    ranks = before[:, None] + _rank_targets(q[None, :] * totals[:, None])
    positions = np.searchsorted(cumulative, ranks.ravel(), side="left").reshape(ranks.shape)
    positions = np.clip(positions, starts[:, None], (ends - 1)[:, None])
    return group[starts], totals, bucket_value(bins[positions]), bucket_value(bins[ends - 1])

"""Spans, errors and a latency histogram per (service, operation) since the process started: what ``/metrics``
exposes to Prometheus, folded from the aggregator's closed buckets."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spyglass.model.sketch import bucket_value
from spyglass.satellite.rollup_codes import BIN_BITS, KEY_SHIFT, MAX_KEYS, SERIES_SHIFT, Names, Rows

#: Upper bounds (seconds) of the Prometheus latency histogram.
HISTOGRAM_BOUNDS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


@dataclass
class RedTotals:
    """Spans, errors and latency of one (service, operation) since the process started."""

    service: str
    operation: str
    count: int = 0
    errors: int = 0
    duration_sum_s: float = 0.0  # from sketch bin values: within the sketch's relative accuracy
    #: Spans with duration <= each of ``HISTOGRAM_BOUNDS_S`` (not cumulative; +Inf is ``count``).
    buckets: list[int] = field(default_factory=lambda: [0] * len(HISTOGRAM_BOUNDS_S))


def copy_totals(totals: RedTotals) -> RedTotals:
    return RedTotals(
        totals.service,
        totals.operation,
        totals.count,
        totals.errors,
        totals.duration_sum_s,
        list(totals.buckets),
    )


_HISTOGRAM_BOUNDS_NS = np.asarray(HISTOGRAM_BOUNDS_S) * 1e9


def add_totals(totals: dict[tuple[str, str], RedTotals], rows: Rows, names: Names) -> None:
    """Fold base rows into per-(service, operation) totals: one Python step per series, not per row."""
    codes, counts, errors = rows
    base = ((codes >> KEY_SHIFT) & MAX_KEYS) == 0
    codes, counts, errors = codes[base], counts[base], errors[base]
    if codes.size == 0:
        return
    series = codes >> SERIES_SHIFT
    distinct, which = np.unique(series, return_inverse=True)
    durations_s = bucket_value((codes & ((1 << BIN_BITS) - 1)) - 1) / 1e9
    bound_index = np.searchsorted(_HISTOGRAM_BOUNDS_NS / 1e9, durations_s, side="left")
    n_bounds = len(HISTOGRAM_BOUNDS_S) + 1
    histogram = np.bincount(
        which * n_bounds + bound_index, weights=counts, minlength=distinct.size * n_bounds
    )
    histogram = histogram.reshape(distinct.size, n_bounds)
    span_counts = np.bincount(which, weights=counts, minlength=distinct.size)
    error_counts = np.bincount(which, weights=errors, minlength=distinct.size)
    sums = np.bincount(which, weights=counts * durations_s, minlength=distinct.size)
    for i, sid in enumerate(distinct.tolist()):
        key = (names.services[sid], names.operations[sid])
        entry = totals.get(key)
        if entry is None:
            entry = totals[key] = RedTotals(*key)
        entry.count += int(span_counts[i])
        entry.errors += int(error_counts[i])
        entry.duration_sum_s += float(sums[i])
        for j in range(len(HISTOGRAM_BOUNDS_S)):
            entry.buckets[j] += int(histogram[i, j])

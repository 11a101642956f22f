"""Spans, errors and a latency histogram per (service, operation) since the process started: what ``/metrics``
exposes to Prometheus, folded from the aggregator's closed buckets."""

from __future__ import annotations

import numpy as np

from spyglass.model.figures import HISTOGRAM_BOUNDS_S, RedTotals
from spyglass.model.sketch import bucket_value
from spyglass.satellite.rollup_codes import (
    BIN_BITS,
    KEY_SHIFT,
    MAX_KEYS,
    OTHER_VALUE,
    SERIES_SHIFT,
    Names,
    Rows,
)

#: (service, operation) pairs counted apart. Past it, a new pair counts under its service's ``__other__``
#: operation (past twice it, under ``__other__`` for both): span names that carry ids would otherwise make a
#: series per request, in this process's memory and in every Prometheus that scrapes it.
MAX_TOTALS = 10_000


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
        key = _counted_as(totals, names.services[sid], names.operations[sid])
        entry = totals.get(key)
        if entry is None:
            entry = totals[key] = RedTotals(*key)
        entry.count += int(span_counts[i])
        entry.errors += int(error_counts[i])
        entry.duration_sum_s += float(sums[i])
        for j in range(len(HISTOGRAM_BOUNDS_S)):
            entry.buckets[j] += int(histogram[i, j])


def _counted_as(totals: dict[tuple[str, str], RedTotals], service: str, operation: str) -> tuple[str, str]:
    """The totals a series counts in: its own while there is room (``MAX_TOTALS``), else a folded one."""
    key = (service, operation)
    if key in totals or len(totals) < MAX_TOTALS:
        return key
    folded = (service, OTHER_VALUE)
    return folded if folded in totals or len(totals) < 2 * MAX_TOTALS else (OTHER_VALUE, OTHER_VALUE)

"""SLI, error budget and burn rates from rollup rows of 100% of spans: exact counts, the latency threshold's
bin, windows without data, and windows that data covers only in part."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from spyglass.analysis.slo import Slo
from spyglass.analysis.slo_burn import (
    MIN_REQUESTS_TO_FIRE,
    BucketCounts,
    EventCounts,
    bucket_counts,
    good_bins,
    slo_status,
)
from spyglass.model.sketch import GAMMA, bucket_index, bucket_value
from tests.support.rollup_tables import HOUR_NS, MINUTE_NS, SECOND_NS, bin_of, rollup_rows

NOW = 1_700_000_000 * SECOND_NS
ERRORS = Slo("avail", "Checkout succeeds", "shop", "GET /checkout", objective=0.99)
LATENCY = Slo("fast", "Checkout is fast", "shop", "GET /checkout", objective=0.99, latency_ms=300.0)


def test_errors_slo_counts_failed_spans_exactly() -> None:
    rows = rollup_rows(
        (NOW - 2 * MINUTE_NS, 50.0, 600, 3),
        (NOW - 2 * MINUTE_NS, 400.0, 400, 2),  # slow does not matter to an errors SLO
        (NOW - 40 * MINUTE_NS, 50.0, 1000, 5),
    )
    counts = bucket_counts(rows, None)
    assert counts.sum() == EventCounts(2000.0, 10.0)
    status = slo_status(ERRORS, counts, EventCounts(8000.0, 10.0), NOW)
    assert status.period == EventCounts(10_000.0, 20.0)
    assert status.sli == pytest.approx(0.998)
    # 20 bad of the 100 the period allows (1% of 10,000): 80% left.
    assert status.budget_remaining == pytest.approx(0.8)
    rates = status.burn_rates()
    assert rates["5m"] == pytest.approx((5 / 1000) / 0.01)
    assert rates["30m"] == pytest.approx((5 / 1000) / 0.01)
    assert rates["1h"] == rates["6h"] == pytest.approx((10 / 2000) / 0.01)
    assert status.firing == ()


def test_an_operation_s_requests_are_its_entry_spans_when_it_has_any() -> None:
    served = rollup_rows((NOW - MINUTE_NS, 50.0, 100, 4))  # SERVER spans answering the route
    called = rollup_rows((NOW - MINUTE_NS, 40.0, 90, 3), kind=3)  # the service's CLIENT calls named after it
    consumed = rollup_rows((NOW - MINUTE_NS, 80.0, 7, 1), kind=5)
    both = pa.concat_tables([served, called, consumed])
    assert bucket_counts(both, None).sum() == EventCounts(107.0, 5.0)
    assert bucket_counts(both, 45.0).sum() == EventCounts(107.0, 107.0)  # the calls (40 ms) were fast
    # An operation run only inside its service (INTERNAL) or only as calls out is counted whole.
    internal = rollup_rows((NOW - MINUTE_NS, 50.0, 30, 2), kind=1)
    assert bucket_counts(pa.concat_tables([internal, called]), None).sum() == EventCounts(120.0, 5.0)


def test_latency_slo_counts_requests_over_the_threshold_exactly() -> None:
    rows = rollup_rows(
        (NOW - MINUTE_NS, 100.0, 980, 7),  # errors do not matter to a latency SLO
        (NOW - MINUTE_NS, 290.0, 10, 0),
        (NOW - MINUTE_NS, 310.0, 6, 0),
        (NOW - MINUTE_NS, 2000.0, 4, 4),
    )
    status = slo_status(LATENCY, bucket_counts(rows, 300.0), EventCounts(), NOW)
    assert status.period == EventCounts(1000.0, 10.0)
    assert status.sli == pytest.approx(0.99)
    assert status.budget_remaining == pytest.approx(0.0)
    assert status.burn_rates()["5m"] == pytest.approx(1.0)


def test_the_bin_holding_the_threshold_is_good_when_the_value_it_stands_for_is() -> None:
    """Bins wholly at or under the threshold are good, wholly over it bad; the bin that holds it is good when
    its value (what percentiles report) is at most the threshold: the same rounding as the p99 shown."""
    edge = bin_of(300.0)
    lower_ns, upper_ns = GAMMA ** (edge - 1), GAMMA**edge
    assert lower_ns < 300e6 <= upper_ns
    representative_ns = float(bucket_value([edge])[0])
    assert lower_ns < representative_ns < upper_ns
    bins = np.array([edge - 1, edge, edge + 1])
    # Threshold at the bin's upper bound: the whole bin is good, the next one bad.
    assert good_bins(bins, upper_ns / 1e6).tolist() == [True, True, False]
    # Threshold just over the bin's lower bound, under its value: the bin is bad, the one below good.
    assert good_bins(bins, lower_ns * 1.0001 / 1e6).tolist() == [True, False, False]
    # Threshold at the bin's value exactly: good.
    assert good_bins(bins, representative_ns / 1e6).tolist() == [True, True, False]
    # The zero bin (instant spans) is always good.
    assert good_bins(bucket_index([0]), 0.001).tolist() == [True]
    # At most half a bin (0.5% of the threshold) is ever counted on the wrong side.
    assert max(upper_ns / representative_ns, representative_ns / lower_ns) - 1 < 0.0051


def test_a_window_without_requests_has_no_burn() -> None:
    status = slo_status(ERRORS, BucketCounts.empty(), EventCounts(), NOW)
    assert status.burn_rates() == {"5m": None, "30m": None, "1h": None, "6h": None}
    assert status.sli is None and status.budget_remaining == 1.0 and status.firing == ()
    # Requests two hours ago only: the short windows are empty, the 6 h one is not.
    rows = rollup_rows((NOW - 2 * HOUR_NS, 50.0, 100, 100))
    status = slo_status(ERRORS, bucket_counts(rows, None), EventCounts(), NOW)
    rates = status.burn_rates()
    assert rates["5m"] is None and rates["30m"] is None and rates["1h"] is None
    assert rates["6h"] == pytest.approx(100.0)
    assert status.firing == ()  # the slow pair's 30 m window holds nothing


def test_burn_is_read_over_what_data_covers() -> None:
    """A server that started ten minutes ago: its hour window holds ten minutes, and its burn is their bad
    share over the allowed share (not diluted by the fifty minutes before it started)."""
    cells = [(NOW - m * MINUTE_NS, 50.0, 95, 0) for m in range(1, 11)]
    cells += [(NOW - m * MINUTE_NS, 900.0, 5, 5) for m in range(1, 11)]
    status = slo_status(ERRORS, bucket_counts(rollup_rows(*cells), None), EventCounts(), NOW)
    rates = status.burn_rates()
    for window in ("5m", "30m", "1h", "6h"):
        assert rates[window] == pytest.approx(5.0)
    assert status.firing == ()
    heavy = [(start, ms, count, errors * 4) for start, ms, count, errors in cells]
    status = slo_status(ERRORS, bucket_counts(rollup_rows(*heavy), None), EventCounts(), NOW)
    assert status.burn_rates()["1h"] == pytest.approx(20.0)
    assert status.firing == ("fast", "slow")


def test_a_pair_fires_only_when_both_windows_burn_and_the_short_one_has_enough_requests() -> None:
    # Failing forty minutes ago, healthy for the last twenty: the long windows burn, the short ones do not.
    cells = [(NOW - 40 * MINUTE_NS, 50.0, 1000, 500), (NOW - 2 * MINUTE_NS, 50.0, 1000, 0)]
    status = slo_status(ERRORS, bucket_counts(rollup_rows(*cells), None), EventCounts(), NOW)
    assert status.burn_rates()["1h"] == pytest.approx(25.0) and status.burn_rates()["5m"] == 0.0
    assert status.firing == ()
    few = rollup_rows((NOW - MINUTE_NS, 50.0, MIN_REQUESTS_TO_FIRE - 1, MIN_REQUESTS_TO_FIRE - 1))
    status = slo_status(ERRORS, bucket_counts(few, None), EventCounts(), NOW)
    assert status.burn_rates()["5m"] == pytest.approx(100.0) and status.firing == ()
    enough = rollup_rows((NOW - MINUTE_NS, 50.0, MIN_REQUESTS_TO_FIRE, MIN_REQUESTS_TO_FIRE))
    assert slo_status(ERRORS, bucket_counts(enough, None), EventCounts(), NOW).firing == ("fast", "slow")


def test_windows_are_whole_buckets_starting_in_them() -> None:
    # A bucket starting exactly 5 minutes ago is in the 5 m window; one starting 10 s before is not.
    rows = rollup_rows(
        (NOW - 5 * MINUTE_NS, 50.0, 10, 1), (NOW - 5 * MINUTE_NS - 10 * SECOND_NS, 50.0, 10, 9)
    )
    status = slo_status(ERRORS, bucket_counts(rows, None), EventCounts(), NOW)
    assert status.windows["5m"] == EventCounts(10.0, 1.0)
    assert status.windows["30m"] == EventCounts(20.0, 10.0)


def test_adjusted_counts_and_overspent_budgets() -> None:
    counts = BucketCounts.of([NOW, NOW], [2.5, 1.5], [2.5, 0.0])
    status = slo_status(ERRORS, counts, EventCounts(), NOW)
    assert status.period == EventCounts(4.0, 2.5)
    assert status.budget_remaining == pytest.approx(1 - 2.5 / 0.04)
    assert not math.isnan(status.budget_remaining)

"""The windows explain compares when an SLO burns: from when the burn began, against yesterday's same hours
when the store holds them and they were healthy, else against the window just before."""

from __future__ import annotations

from typing import cast

import pyarrow as pa

from spyglass.analysis.slo import Slo
from spyglass.analysis.slo_burn import PAIR_BY_NAME, BucketCounts, bucket_counts
from spyglass.analysis.slo_windows import MIN_BASELINE_TRACES, burn_onset, explain_windows
from spyglass.model.rollups import TRACE_SUMMARY_SCHEMA
from spyglass.store.protocol import Store, TraceQuery
from tests.support.rollup_tables import DAY_NS, MINUTE_NS, SECOND_NS, TableRollups, rollup_rows

NOW = 1_700_000_000 * SECOND_NS
SLO = Slo("avail", "Checkout succeeds", "shop", "GET /checkout", objective=0.99)
BUCKET_NS = 10 * SECOND_NS


class StoredTraces:
    """Just enough of a store: ``find_traces`` answers ``traces`` rows for windows a day or more ago."""

    def __init__(self, traces: int) -> None:
        self.traces = traces
        self.asked: list[TraceQuery] = []

    def find_traces(self, query: TraceQuery) -> pa.Table:
        self.asked.append(query)
        assert query.end_ns is not None
        rows = self.traces if query.end_ns <= NOW - DAY_NS + MINUTE_NS else 0
        return TRACE_SUMMARY_SCHEMA.empty_table() if not rows else _summaries(min(rows, query.limit))


def _summaries(n: int) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "trace_id": i.to_bytes(16, "big"),
                "root_service": "shop",
                "root_operation": "GET /checkout",
                "start_ns": NOW - DAY_NS,
                "duration_ns": 1,
                "span_count": 1,
                "error_count": 0,
                "sample_weight": 1.0,
            }
            for i in range(n)
        ],
        schema=TRACE_SUMMARY_SCHEMA,
    )


def burning_since(start_ns: int, buckets: int = 30) -> BucketCounts:
    """Buckets of 50 requests up to now, 1 bad each before ``start_ns`` and 25 bad from it on."""
    first = NOW - buckets * BUCKET_NS
    starts = [first + i * BUCKET_NS for i in range(buckets)]
    return BucketCounts.of(starts, [50.0] * buckets, [25.0 if s >= start_ns else 1.0 for s in starts])


def test_the_burn_begins_at_the_change_of_the_bad_share() -> None:
    onset = NOW - 8 * BUCKET_NS
    assert burn_onset(burning_since(onset), NOW - 5 * MINUTE_NS) == onset
    # Burning throughout, or hardly at all: no clear start, so the whole window.
    since = NOW - 5 * MINUTE_NS
    assert burn_onset(burning_since(NOW - 10 * MINUTE_NS), since) == since
    steady = BucketCounts.of([NOW - i * BUCKET_NS for i in range(30)], [50.0] * 30, [1.0] * 30)
    assert burn_onset(steady, since) == since
    # One bad bucket among few requests is not a start.
    noisy = BucketCounts.of(
        [since, since + BUCKET_NS, since + 2 * BUCKET_NS], [3.0, 3.0, 3.0], [0.0, 2.0, 1.0]
    )
    assert burn_onset(noisy, since) == since


def test_a_burn_that_starts_inside_a_bucket_begins_with_that_bucket() -> None:
    """Its first seconds make that bucket's bad share higher than before, though too little to put the split
    before it: the burn begins there, so that the baseline holds none of it."""
    since = NOW - 5 * MINUTE_NS
    for straddling_bad, begins in ((8.0, NOW - 9 * BUCKET_NS), (2.0, NOW - 8 * BUCKET_NS)):
        counts = burning_since(NOW - 8 * BUCKET_NS)
        counts.bad[counts.starts_ns == NOW - 9 * BUCKET_NS] = straddling_bad
        assert burn_onset(counts, since) == begins, straddling_bad


def test_baseline_is_just_before_the_burn_when_yesterday_is_not_stored() -> None:
    onset = NOW - 8 * BUCKET_NS
    store = StoredTraces(0)
    windows = explain_windows(
        cast("Store", store), TableRollups(), SLO, burning_since(onset), PAIR_BY_NAME["fast"], NOW
    )
    assert (windows.start_ns, windows.end_ns) == (onset, NOW)
    assert (windows.baseline_start_ns, windows.baseline_end_ns) == (onset - 8 * BUCKET_NS, onset)
    assert windows.baseline_rule == "before_burn"
    assert store.asked[0].start_ns == onset - DAY_NS and store.asked[0].end_ns == NOW - DAY_NS


def test_baseline_is_yesterday_when_stored_and_healthy() -> None:
    onset = NOW - 8 * BUCKET_NS
    rollups = TableRollups()
    rollups.add(rollup_rows(*[(onset - DAY_NS + i * BUCKET_NS, 50.0, 50, 1) for i in range(8)]))
    recent = burning_since(onset)
    fast = PAIR_BY_NAME["fast"]
    store = cast("Store", StoredTraces(MIN_BASELINE_TRACES))
    windows = explain_windows(store, rollups, SLO, recent, fast, NOW)
    assert windows.baseline_rule == "day_before"
    assert (windows.baseline_start_ns, windows.baseline_end_ns) == (onset - DAY_NS, NOW - DAY_NS)
    # Too few stored traces there, or yesterday burning as much: the window before the burn instead.
    few = cast("Store", StoredTraces(MIN_BASELINE_TRACES - 1))
    assert explain_windows(few, rollups, SLO, recent, fast, NOW).baseline_rule == "before_burn"
    burning = TableRollups()
    burning.add(rollup_rows(*[(onset - DAY_NS + i * BUCKET_NS, 50.0, 50, 20) for i in range(8)]))
    assert explain_windows(store, burning, SLO, recent, fast, NOW).baseline_rule == "before_burn"


def test_the_window_is_the_short_window_clipped_to_data_when_no_start_is_clear() -> None:
    # A server that started two minutes ago, failing from its first request.
    starts = [NOW - i * BUCKET_NS for i in range(1, 13)]
    recent = bucket_counts(rollup_rows(*[(s, 50.0, 50, 25) for s in starts]), None)
    windows = explain_windows(
        cast("Store", StoredTraces(0)), TableRollups(), SLO, recent, PAIR_BY_NAME["fast"], NOW
    )
    assert windows.start_ns == min(starts) and windows.end_ns == NOW
    assert windows.baseline_end_ns == windows.start_ns

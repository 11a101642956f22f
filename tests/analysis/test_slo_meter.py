"""The meter reads SLOs' requests from the rollups: the fresh minutes at every measure, the settled hours every
few minutes (so late spans count), the rest of the period once an hour, and each bucket once however the
reads are cut."""

from __future__ import annotations

import pytest

from spyglass.analysis.slo import Slo
from spyglass.analysis.slo_burn import EventCounts
from spyglass.analysis.slo_meter import REFRESH_S, SloMeter
from tests.support.rollup_tables import DAY_NS, HOUR_NS, MINUTE_NS, SECOND_NS, TableRollups, rollup_rows

NOW = 1_700_000_000 * SECOND_NS
SLO = Slo("avail", "Checkout succeeds", "shop", "GET /checkout", objective=0.99, period_days=7)
AGES = [
    8 * DAY_NS,  # before the period: not counted
    6 * DAY_NS,
    30 * HOUR_NS,
    7 * HOUR_NS,
    6 * HOUR_NS + 5 * MINUTE_NS,
    3 * HOUR_NS,
    50 * MINUTE_NS,
    4 * MINUTE_NS,
    90 * SECOND_NS,
    10 * SECOND_NS,
]


def feed(rollups: TableRollups, now_ns: int) -> None:
    rollups.add(rollup_rows(*[(now_ns - age, 50.0, 100, 1 + i) for i, age in enumerate(AGES)]))
    rollups.add(rollup_rows((now_ns - 10 * SECOND_NS, 50.0, 5, 0), service="other"))


def test_period_and_windows_from_every_resolution() -> None:
    rollups = TableRollups()
    feed(rollups, NOW)
    status = SloMeter(rollups).measure(SLO, NOW).status
    assert status.period == EventCounts(900.0, sum(range(2, 11)))
    assert status.windows["5m"] == EventCounts(300.0, 8 + 9 + 10)
    assert status.windows["1h"] == EventCounts(400.0, 7 + 8 + 9 + 10)
    assert status.windows["6h"] == EventCounts(500.0, 6 + 7 + 8 + 9 + 10)


def test_measures_agree_with_a_fresh_meter_and_read_little_between_refreshes() -> None:
    rollups = TableRollups()
    feed(rollups, NOW)
    meter = SloMeter(rollups)
    meter.measure(SLO, NOW)
    later = NOW + 3 * HOUR_NS + 17 * SECOND_NS
    rollups.add(rollup_rows(*[(later - m * MINUTE_NS, 900.0, 10, 10) for m in range(0, 300, 7)]))
    first = len(rollups.queries)
    for step in range(1, 181):  # a measure a minute for three hours
        meter.measure(SLO, NOW + step * MINUTE_NS)
    queries = rollups.queries[first:]
    # One read of the fresh minutes a measure; the settled hours every REFRESH_S; the period once an hour.
    assert len(queries) <= 180 + 2 * (180 * 60 // REFRESH_S + 3) + 3
    assert sum(q.end_ns - q.start_ns > 8 * HOUR_NS for q in queries) <= 4
    kept = meter.measure(SLO, later).status
    fresh = SloMeter(rollups).measure(SLO, later).status
    assert kept.period == fresh.period and kept.windows == fresh.windows
    assert kept.period.total == pytest.approx(100 * 9 + 10 * 43)


def test_late_spans_count_within_a_refresh() -> None:
    rollups = TableRollups()
    meter = SloMeter(rollups)
    assert meter.measure(SLO, NOW).status.period == EventCounts()
    # Spans from a minute, ten minutes and five hours ago arrive after that measure (a retried export).
    rollups.add(
        rollup_rows(
            (NOW - MINUTE_NS, 50.0, 10, 1),
            (NOW - 10 * MINUTE_NS, 50.0, 40, 4),
            (NOW - 5 * HOUR_NS, 50.0, 60, 6),
        )
    )
    assert meter.measure(SLO, NOW + SECOND_NS).status.period == EventCounts(10.0, 1.0)
    status = meter.measure(SLO, NOW + REFRESH_S * SECOND_NS).status
    assert status.period == EventCounts(110.0, 11.0)
    assert status.windows["30m"] == EventCounts(50.0, 5.0)


def test_slos_of_one_service_share_the_fresh_read() -> None:
    rollups = TableRollups()
    rollups.add(rollup_rows((NOW - 30 * SECOND_NS, 50.0, 10, 1)))
    rollups.add(rollup_rows((NOW - 30 * SECOND_NS, 50.0, 20, 2), operation="GET /cart"))
    cart = Slo("cart", "Cart", "shop", "GET /cart", objective=0.99)
    meter = SloMeter(rollups)
    meter.measure_all([SLO, cart], NOW)
    asked = len(rollups.queries)
    measures = meter.measure_all([SLO, cart], NOW + SECOND_NS)
    assert len(rollups.queries) == asked + 1
    assert measures["avail"].status.period == EventCounts(10.0, 1.0)
    assert measures["cart"].status.period == EventCounts(20.0, 2.0)


def test_a_changed_definition_is_read_again_and_a_forgotten_slo_starts_over() -> None:
    rollups = TableRollups()
    rollups.add(rollup_rows((NOW - 2 * DAY_NS, 100.0, 90, 0), (NOW - 2 * DAY_NS, 500.0, 10, 0)))
    meter = SloMeter(rollups)
    assert meter.measure(SLO, NOW).status.period.bad == 0
    latency = Slo("avail", "Checkout succeeds", "shop", "GET /checkout", objective=0.99, latency_ms=300.0)
    assert meter.measure(latency, NOW).status.period.bad == 10
    meter.forget("avail")
    assert meter.measure(SLO, NOW).status.period.bad == 0

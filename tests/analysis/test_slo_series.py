"""An SLO's series: requests and bad requests per step, good and bad counted as the SLO's status counts them,
every step of the window present, steps never finer than the rollup buckets."""

from __future__ import annotations

import pytest

from spyglass.analysis.slo import Slo
from spyglass.analysis.slo_series import series_step_s, slo_series
from tests.support.rollup_tables import MINUTE_NS, SECOND_NS, TableRollups, rollup_rows

NOW = 1_700_000_045 * SECOND_NS
ERRORS = Slo("ok", "Checkout succeeds", "shop", "GET /checkout", objective=0.99)
LATENCY = Slo("fast", "Checkout is fast", "shop", "GET /checkout", objective=0.9, latency_ms=100)


def fed() -> TableRollups:
    rollups = TableRollups()
    rollups.add(
        rollup_rows(
            (NOW - 9 * MINUTE_NS, 50.0, 100, 0),
            (NOW - 9 * MINUTE_NS + 30 * SECOND_NS, 500.0, 10, 5),
            (NOW - 2 * MINUTE_NS, 50.0, 40, 10),
            (NOW - 2 * MINUTE_NS, 50.0, 5, 0),
        )
    )
    rollups.add(rollup_rows((NOW - 2 * MINUTE_NS, 900.0, 1000, 1000), service="other"))
    return rollups


def test_errors_per_step_with_every_step_present() -> None:
    series = slo_series(fed(), ERRORS, NOW - 10 * MINUTE_NS, NOW, 60).as_json()
    points = series["points"]
    assert series["step_s"] == 60 and len(points) == 11  # the window is not minute-aligned
    assert [p["start_ns"] % MINUTE_NS for p in points] == [0] * 11
    busy = [p for p in points if p["requests"]]
    assert [(p["requests"], p["bad_requests"]) for p in busy] == [(110.0, 5.0), (45.0, 10.0)]
    assert busy[0]["sli"] == pytest.approx(105 / 110)
    assert busy[1]["burn_rate"] == pytest.approx((10 / 45) / 0.01)
    assert all(p["sli"] is None and p["burn_rate"] is None for p in points if not p["requests"])


def test_latency_counts_slow_requests_as_bad() -> None:
    points = slo_series(fed(), LATENCY, NOW - 10 * MINUTE_NS, NOW, 60).as_json()["points"]
    busy = [p for p in points if p["requests"]]
    assert [(p["requests"], p["bad_requests"]) for p in busy] == [(110.0, 10.0), (45.0, 0.0)]
    assert busy[1]["sli"] == 1.0


def test_steps_are_whole_buckets() -> None:
    assert series_step_s(0, 3_600 * SECOND_NS, 10) == 40
    assert series_step_s(0, 3_600 * SECOND_NS, 10, step_s=15) == 20
    assert series_step_s(0, 60 * SECOND_NS, 10) == 10

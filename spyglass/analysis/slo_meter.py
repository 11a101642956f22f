"""Reading SLOs' requests from the rollups of 100% of spans, cheaply enough to do it every few seconds for
many SLOs, through the same ``RollupReader`` the API reads metrics with.

What each SLO needs: its last six hours bucket by bucket (the burn windows; the last hour at the rollups' own
resolution, 10 s, so the 5 m, 30 m and 1 h windows are exact to a bucket; the hours before by the minute) and
the rest of its period as one sum. Reads cost mostly a fixed price per query, so:

- the rest of the period (before the hour the 6 h window starts in) is read by the hour, once an hour;
- the six hours up to ``SETTLE_S`` ago are read every ``REFRESH_S`` (the buckets there have closed);
- only the minutes since are read at every measure, in one query per service for all its SLOs.

Spans that arrive late (a client's retried export) therefore count within ``REFRESH_S`` when they are less
than six hours old, and within the hour otherwise. Every read covers whole buckets, and the reads are aligned
so that a row is counted once: it belongs to the read whose range holds its bucket's start. The period begins
on the hour, so it may hold up to an hour more than its days.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow.compute as pc

from spyglass.analysis.live import RollupReader
from spyglass.analysis.slo import Slo
from spyglass.analysis.slo_burn import (
    LONGEST_WINDOW_S,
    BucketCounts,
    EventCounts,
    SloStatus,
    bucket_counts,
    slo_status,
)
from spyglass.store.protocol import RollupQuery

HOUR_S = 3_600
MINUTE_S = 60
#: The last hour is kept at the rollups' own resolution (the short windows are exact to a bucket).
FINE_S = 3_600
#: Buckets this old have closed (the aggregator writes a bucket seconds after it ends).
SETTLE_S = 120
#: How often the settled buckets of the last six hours are read again (so late spans count).
REFRESH_S = 300
#: Spans from slightly fast clocks land in buckets after now: the fresh read goes this far past now.
FUTURE_SLACK_S = 60


def _floor(value_ns: int, step_s: int) -> int:
    return value_ns - value_ns % (step_s * 10**9)


@dataclass(frozen=True)
class SloMeasure:
    """An SLO's status, and its requests bucket by bucket over the last hours (where a burn's start is read)."""

    status: SloStatus
    recent: BucketCounts


@dataclass(frozen=True)
class _Kept:
    """One SLO's requests read earlier: ``older`` over ``[period_start_ns, hours_edge_ns)``, and ``settled``
    bucket by bucket over ``[hours_edge_ns, cut_ns)``, read at ``read_ns``."""

    definition: tuple[str, str, float | None, int]
    period_start_ns: int
    hours_edge_ns: int
    older: EventCounts
    read_ns: int
    cut_ns: int
    settled: BucketCounts


class SloMeter:
    """Measures SLOs from a ``RollupReader`` (thread-safe: the evaluator and the API share one)."""

    def __init__(self, rollups: RollupReader) -> None:
        self.rollups = rollups
        self._kept: dict[str, _Kept] = {}
        self._lock = threading.Lock()

    def measure(self, slo: Slo, now_ns: int) -> SloMeasure:
        """One SLO's status at ``now_ns``, with its recent buckets."""
        return self.measure_all([slo], now_ns)[slo.id]

    def measure_all(self, slos: Sequence[Slo], now_ns: int) -> dict[str, SloMeasure]:
        """Every SLO's status at ``now_ns``, by id; the fresh minutes read once per service."""
        kept = {slo.id: self._up_to_date(slo, now_ns) for slo in slos}
        by_service: dict[str, list[Slo]] = defaultdict(list)
        for slo in slos:
            by_service[slo.service].append(slo)
        measures: dict[str, SloMeasure] = {}
        end = now_ns + FUTURE_SLACK_S * 10**9
        for service, group in by_service.items():
            operations = {slo.operation for slo in group}
            start = min(kept[slo.id].cut_ns for slo in group)
            only = next(iter(operations)) if len(operations) == 1 else None
            rows = self.rollups.read(RollupQuery(start, end, service, only))
            for slo in group:
                mine = (
                    rows
                    if only is not None
                    else rows.filter(pc.equal(rows.column("operation"), slo.operation))
                )
                slo_kept = kept[slo.id]
                fresh = bucket_counts(mine, slo.latency_ms).between(slo_kept.cut_ns, end)
                recent = slo_kept.settled.merged(fresh)
                measures[slo.id] = SloMeasure(slo_status(slo, recent, slo_kept.older, now_ns), recent)
        return measures

    def forget(self, slo_id: str) -> None:
        """Drop what is kept for an SLO (it was deleted)."""
        with self._lock:
            self._kept.pop(slo_id, None)

    def _up_to_date(self, slo: Slo, now_ns: int) -> _Kept:
        """What is kept for ``slo``, read again where it is due."""
        definition = (slo.service, slo.operation, slo.latency_ms, slo.period_days)
        period_start = _floor(now_ns - slo.period_ns, HOUR_S)
        hours_edge = _floor(now_ns - LONGEST_WINDOW_S * 10**9, HOUR_S)
        with self._lock:
            kept = self._kept.get(slo.id)
        same = kept is not None and kept.definition == definition and kept.hours_edge_ns == hours_edge
        if kept is not None and same and kept.read_ns <= now_ns < kept.read_ns + REFRESH_S * 10**9:
            return kept
        if kept is not None and same and kept.period_start_ns == period_start:
            older = kept.older
        else:
            older = self._read(slo, period_start, hours_edge, HOUR_S).sum()
        cut = _floor(now_ns - SETTLE_S * 10**9, MINUTE_S)
        fine_edge = min(_floor(now_ns - FINE_S * 10**9, MINUTE_S), cut)
        settled = self._read(slo, hours_edge, fine_edge, MINUTE_S).merged(self._read(slo, fine_edge, cut))
        fresh = _Kept(definition, period_start, hours_edge, older, now_ns, cut, settled)
        with self._lock:
            self._kept[slo.id] = fresh
        return fresh

    def _read(self, slo: Slo, start_ns: int, end_ns: int, resolution_s: int | None = None) -> BucketCounts:
        """The SLO's requests per bucket whose (resolution-floored) start is in ``[start_ns, end_ns)``."""
        if start_ns >= end_ns:
            return BucketCounts.empty()
        query = RollupQuery(start_ns, end_ns, slo.service, slo.operation, resolution_s=resolution_s)
        counts = bucket_counts(self.rollups.read(query), slo.latency_ms)
        if resolution_s is not None and len(counts):
            # Rows not yet stored come at the aggregator's own bucket size: floor them as the store did its own.
            starts = counts.starts_ns - counts.starts_ns % (resolution_s * 10**9)
            counts = BucketCounts.of(starts, counts.totals, counts.bad)
        return counts.between(start_ns, end_ns)

"""An SLO's SLI, error budget and burn rates, exact over 100% of spans: plain functions of rollup rows
(latency-sketch bins per group and time bucket, ``spyglass.model.rollups``), never of stored, sampled spans.

Good and bad requests. An errors SLO's bad requests are its operation's spans with status ERROR. A latency
SLO's good requests are those at most ``latency_ms`` slow, counted from the sketch bins: a bin wholly at or under
the threshold is good, wholly over it bad, and the one bin holding the threshold (about 1% wide) is good when the
duration it stands for (``sketch.bucket_value``, what every percentile reports) is at most the threshold. So a
request within 0.5% of the threshold may fall on either side, and "p99 <= 300 ms" agrees with "99% of requests
<= 300 ms" as the API reports both.

Burn rate: the bad share of a window's requests over the share the objective allows, ``(bad / total) / (1 -
objective)``; 1 spends the budget exactly over the period. Windows and pairs are the Google SRE workbook's: the
fast pair (1 h and 5 m) fires at 14.4 (2% of a 30-day budget in an hour), the slow pair (6 h and 30 m) at 6 (5% in
six hours); a pair fires when both its windows burn at least that much. A window is read over what data is there:
a server that started ten minutes ago has an hour window holding ten minutes, and its burn is that data's bad share
over the allowed share. A window with no requests has no burn (``None``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.analysis.slo import Slo
from spyglass.model.schema import ENTRY_KINDS, of_kinds
from spyglass.model.sketch import bucket_value

#: The windows burn rates are reported over, by name, in seconds.
WINDOWS_S = {"5m": 300, "30m": 1_800, "1h": 3_600, "6h": 21_600}
#: The longest of them: how much recent history, bucket by bucket, an SLO's evaluation needs.
LONGEST_WINDOW_S = max(WINDOWS_S.values())
#: A pair does not fire while its short window holds fewer requests than this: the first few requests after a
#: start (one failure in three is a burn of 33 at 99%) say nothing yet.
MIN_REQUESTS_TO_FIRE = 20

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class BurnPair:
    """Two windows that must both burn at least ``threshold`` for the pair to fire: the long one says the burn
    is big enough to matter, the short one that it is still going on (so the alert resolves soon after)."""

    name: str
    long_window: str
    short_window: str
    threshold: float


PAIRS = (BurnPair("fast", "1h", "5m", 14.4), BurnPair("slow", "6h", "30m", 6.0))
PAIR_BY_NAME = {pair.name: pair for pair in PAIRS}


@dataclass(frozen=True)
class EventCounts:
    """Requests of an SLO in some span of time, and how many of them were bad (weights may be fractional:
    spans head-sampled upstream count with their adjusted count)."""

    total: float = 0.0
    bad: float = 0.0

    @property
    def good(self) -> float:
        return self.total - self.bad

    def __add__(self, other: EventCounts) -> EventCounts:
        return EventCounts(self.total + other.total, self.bad + other.bad)

    def bad_share(self) -> float | None:
        return self.bad / self.total if self.total > 0 else None

    def burn_rate(self, objective: float) -> float | None:
        """The bad share over the share the objective allows; ``None`` without requests."""
        share = self.bad_share()
        return None if share is None else share / (1.0 - objective)


@dataclass(frozen=True)
class BucketCounts:
    """An SLO's requests per rollup bucket: bucket starts (sorted, distinct), totals and bad counts."""

    starts_ns: IntArray
    totals: FloatArray
    bad: FloatArray

    @classmethod
    def empty(cls) -> BucketCounts:
        return cls(np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.float64))

    @classmethod
    def of(cls, starts_ns: npt.ArrayLike, totals: npt.ArrayLike, bad: npt.ArrayLike) -> BucketCounts:
        """Sum per distinct start (starts in any order, repeated or not)."""
        starts = np.asarray(starts_ns, dtype=np.int64)
        if starts.size == 0:
            return cls.empty()
        distinct, inverse = np.unique(starts, return_inverse=True)
        weights = (np.asarray(totals, np.float64), np.asarray(bad, np.float64))
        summed = [
            np.bincount(inverse, weights=w, minlength=distinct.size).astype(np.float64) for w in weights
        ]
        return cls(distinct, summed[0], summed[1])

    def __len__(self) -> int:
        return int(self.starts_ns.size)

    def merged(self, other: BucketCounts) -> BucketCounts:
        return BucketCounts.of(
            np.concatenate([self.starts_ns, other.starts_ns]),
            np.concatenate([self.totals, other.totals]),
            np.concatenate([self.bad, other.bad]),
        )

    def between(self, start_ns: int | None = None, end_ns: int | None = None) -> BucketCounts:
        """The buckets starting in ``[start_ns, end_ns)`` (either bound open when ``None``)."""
        mask = np.ones(len(self), dtype=bool)
        if start_ns is not None:
            mask &= self.starts_ns >= start_ns
        if end_ns is not None:
            mask &= self.starts_ns < end_ns
        return BucketCounts(self.starts_ns[mask], self.totals[mask], self.bad[mask])

    def sum(self) -> EventCounts:
        return EventCounts(float(self.totals.sum()), float(self.bad.sum()))

    def window(self, start_ns: int, end_ns: int | None = None) -> EventCounts:
        """Requests of the buckets starting in the window (a window is whole buckets)."""
        return self.between(start_ns, end_ns).sum()


def good_bins(bins: npt.ArrayLike, latency_ms: float) -> npt.NDArray[np.bool_]:
    """Which sketch bins hold good requests of a latency SLO (the module's docstring says why this way)."""
    return np.asarray(bucket_value(bins) <= latency_ms * 1e6)


def bad_requests(rows: pa.Table, latency_ms: float | None) -> FloatArray:
    """Each rollup row's bad requests: its errors (an errors SLO), or its count when its bin is slow."""
    if latency_ms is None:
        return np.asarray(rows.column("errors").to_numpy(), dtype=np.float64)
    counts = np.asarray(rows.column("count").to_numpy(), dtype=np.float64)
    bins = np.asarray(rows.column("bin").to_numpy(), dtype=np.int64)
    return np.where(good_bins(bins, latency_ms), 0.0, counts)


def bucket_counts(rows: pa.Table, latency_ms: float | None) -> BucketCounts:
    """Rollup rows (``ROLLUP_SCHEMA``, one group's) summed per bucket start into requests and bad requests."""
    rows = requests_of(rows)
    if rows.num_rows == 0:
        return BucketCounts.empty()
    return BucketCounts.of(
        rows.column("bucket_start_ns").to_numpy(),
        rows.column("count").to_numpy(),
        bad_requests(rows, latency_ms),
    )


def requests_of(rows: pa.Table) -> pa.Table:
    """The rows of the operation's entry spans (``ENTRY_KINDS``) when it has any, else all of them (an operation
    only ever run inside a service: a job, an internal step). A service often names its call to another after the
    route it calls (a CLIENT ``POST /checkout`` beside the SERVER ``POST /checkout`` it answers): counting both
    doubled the requests and mixed the calls' latencies and errors into the endpoint's."""
    if rows.num_rows == 0:
        return rows
    entry = of_kinds(rows.column("kind"), ENTRY_KINDS)
    return rows.filter(entry) if pc.any(entry).as_py() else rows


@dataclass(frozen=True)
class SloStatus:
    """An SLO measured at ``evaluated_ns``: over its period, over each burn window, and which pairs fire."""

    slo: Slo
    evaluated_ns: int
    period: EventCounts
    windows: dict[str, EventCounts]
    firing: tuple[str, ...]

    @property
    def sli(self) -> float | None:
        """The good share of the period's requests; ``None`` without requests."""
        share = self.period.bad_share()
        return None if share is None else 1.0 - share

    @property
    def budget_remaining(self) -> float:
        """The share of the period's error budget left (negative once overspent; 1 without requests)."""
        return 1.0 - self.budget_spent(self.period)

    def budget_spent(self, counts: EventCounts) -> float:
        """The share of the period's error budget that ``counts``' bad requests used."""
        allowed = self.slo.error_budget * self.period.total
        return counts.bad / allowed if allowed > 0 else 0.0

    def burn_rates(self) -> dict[str, float | None]:
        return {name: counts.burn_rate(self.slo.objective) for name, counts in self.windows.items()}

    def as_json(self) -> dict[str, Any]:
        """The measured part of the API's SLO object."""
        return {
            "sli": self.sli,
            "budget_remaining": self.budget_remaining,
            "burn_rates": self.burn_rates(),
            "firing": list(self.firing),
            "requests": self.period.total,
            "bad_requests": self.period.bad,
            "evaluated_ns": self.evaluated_ns,
        }


def pair_fires(pair: BurnPair, windows: dict[str, EventCounts], objective: float) -> bool:
    """Both windows burn at least the pair's threshold, and the short one holds enough requests to say so."""
    short, long = windows[pair.short_window], windows[pair.long_window]
    if short.total < MIN_REQUESTS_TO_FIRE:
        return False
    rates = (short.burn_rate(objective), long.burn_rate(objective))
    return all(rate is not None and rate >= pair.threshold for rate in rates)


def slo_status(slo: Slo, recent: BucketCounts, older: EventCounts, now_ns: int) -> SloStatus:
    """The SLO at ``now_ns``: ``recent`` holds its buckets of the last hours (at least the longest window),
    ``older`` the rest of its period, before the first of ``recent``'s buckets."""
    windows = {name: recent.window(now_ns - seconds * 10**9) for name, seconds in WINDOWS_S.items()}
    period = older + recent.window(now_ns - slo.period_ns)
    firing = tuple(pair.name for pair in PAIRS if pair_fires(pair, windows, slo.objective))
    return SloStatus(slo, now_ns, period, windows, firing)

"""The two windows explain compares when an SLO starts burning: the burning window, and a healthy baseline of
the same length.

The burning window runs from when the burn began to now, within the short window of the pair that fired. The
burn began at the most likely change point of the bad share over that window's buckets: the bucket boundary
that best splits them into a before and a higher after (the largest binomial log-likelihood ratio, at least
``MIN_ONSET_LOG_LIKELIHOOD_RATIO``), one bucket earlier when the last bucket before that split already burns
(the burn began inside it: a baseline holding its first seconds hides the cause); with no clear split (the
window burns throughout, or the burn started before it), the whole short window.

The baseline is the same hours one day earlier when the store holds at least ``MIN_BASELINE_TRACES`` of the
operation's traces there and the rollups show at most half the burning window's bad share there (yesterday
was healthy, and like today in everything daily); else the most recent window as long, just before the burn
began.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from spyglass.analysis.live import RollupReader
from spyglass.analysis.slo import Slo
from spyglass.analysis.slo_burn import WINDOWS_S, BucketCounts, BurnPair, FloatArray, bucket_counts
from spyglass.store.protocol import RollupQuery, Store, TraceQuery

DAY_NS = 86_400 * 10**9
#: Stored traces of the operation the day-earlier window must hold to serve as the baseline.
MIN_BASELINE_TRACES = 10
#: A split of the short window's buckets names the burn's start only when it is this much likelier than no
#: split (about what a chi-square test at 1% asks, with some room for trying every split).
MIN_ONSET_LOG_LIKELIHOOD_RATIO = 4.0

#: Standard errors above the healthy buckets' bad share at which the bucket just before the split joins the burn.
STRADDLE_Z = 2.0

BaselineRule = Literal["day_before", "before_burn"]


@dataclass(frozen=True)
class ExplainWindows:
    """What explain compares: ``[start_ns, end_ns)`` against ``[baseline_start_ns, baseline_end_ns)``, and
    which rule chose the baseline."""

    start_ns: int
    end_ns: int
    baseline_start_ns: int
    baseline_end_ns: int
    baseline_rule: BaselineRule

    def as_json(self) -> dict[str, Any]:
        return {
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "baseline_start_ns": self.baseline_start_ns,
            "baseline_end_ns": self.baseline_end_ns,
            "baseline_rule": self.baseline_rule,
        }


def _log_likelihood(bad: FloatArray, total: FloatArray) -> FloatArray:
    """Binomial log-likelihood of ``bad`` of ``total`` at their own share (0 where a side is empty)."""
    good = total - bad
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, bad / np.where(total > 0, total, 1.0), 0.0)
        bad_part = np.where(bad > 0, bad * np.log(np.where(share > 0, share, 1.0)), 0.0)
        good_part = np.where(good > 0, good * np.log(np.where(share < 1, 1.0 - share, 1.0)), 0.0)
    return np.asarray(bad_part + good_part, dtype=np.float64)


def burn_onset(counts: BucketCounts, since_ns: int) -> int:
    """When the burn began, at or after ``since_ns``: the start of the bucket after the best split of the bad
    share (the module's docstring), else ``since_ns``."""
    window = counts.between(start_ns=since_ns)
    if len(window) < 2:
        return since_ns
    before_total = np.cumsum(window.totals)[:-1]
    before_bad = np.cumsum(window.bad)[:-1]
    total, bad = float(window.totals.sum()), float(window.bad.sum())
    after_total, after_bad = total - before_total, bad - before_bad
    ratio = (
        _log_likelihood(before_bad, before_total)
        + _log_likelihood(after_bad, after_total)
        - _log_likelihood(np.array([bad]), np.array([total]))[0]
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        rising = (
            (before_total > 0) & (after_total > 0) & (after_bad * before_total > before_bad * after_total)
        )
    ratio = np.where(rising, ratio, -math.inf)
    best = int(np.argmax(ratio))
    if ratio[best] < MIN_ONSET_LOG_LIKELIHOOD_RATIO:
        return since_ns
    if best > 0 and _holds_the_start(window, best):
        return int(window.starts_ns[best])
    return int(window.starts_ns[best + 1])


def _holds_the_start(window: BucketCounts, last: int) -> bool:
    """Whether the last bucket before the split already burns: its bad share significantly above the buckets
    before it (one-sided, ``STRADDLE_Z`` standard errors). A burn rarely starts on a bucket boundary; the bucket
    it starts in is split by share, and when the burn's first seconds put it on the healthy side, a baseline
    ending at the split would hold them."""
    total, bad = float(window.totals[:last].sum()), float(window.bad[:last].sum())
    n, k = float(window.totals[last]), float(window.bad[last])
    if total <= 0 or n <= 0:
        return False
    share = bad / total
    se = math.sqrt(max(share * (1 - share), 1 / total) / n)
    return (k / n - share) > STRADDLE_Z * se


def _bad_share(rollups: RollupReader, slo: Slo, start_ns: int, end_ns: int) -> float | None:
    rows = rollups.read(RollupQuery(start_ns, end_ns, slo.service, slo.operation))
    return bucket_counts(rows, slo.latency_ms).window(start_ns, end_ns).bad_share()


def explain_windows(
    store: Store,
    rollups: RollupReader,
    slo: Slo,
    recent: BucketCounts,
    pair: BurnPair,
    now_ns: int,
) -> ExplainWindows:
    """The burning window and its baseline (the module's docstring says how both are chosen)."""
    short_start = now_ns - WINDOWS_S[pair.short_window] * 10**9
    first = recent.between(start_ns=short_start)
    # Never before the first bucket with data: the window is what there is.
    since = max(short_start, int(first.starts_ns[0])) if len(first) else short_start
    start = min(burn_onset(recent, since), now_ns - 10**9)
    length = now_ns - start
    burning = recent.window(start).bad_share()
    day_start, day_end = start - DAY_NS, now_ns - DAY_NS
    stored = store.find_traces(
        TraceQuery(
            service=slo.service,
            operation=slo.operation,
            start_ns=day_start,
            end_ns=day_end,
            limit=MIN_BASELINE_TRACES,
        )
    )
    if stored.num_rows >= MIN_BASELINE_TRACES:
        share = _bad_share(rollups, slo, day_start, day_end)
        if share is not None and burning is not None and share <= burning / 2:
            return ExplainWindows(start, now_ns, day_start, day_end, "day_before")
    return ExplainWindows(start, now_ns, start - length, start, "before_burn")

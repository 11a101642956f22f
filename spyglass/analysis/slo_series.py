"""An SLO's SLI over time, step by step, from the rollups of 100% of spans (as its status is): what the SLO page
draws. Each step's SLI is the good share of that step's requests and its burn rate their bad share over the
share the objective allows, good and bad counted as ``analysis.slo_burn`` counts them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from spyglass.analysis.live import RollupReader
from spyglass.analysis.slo import Slo
from spyglass.analysis.slo_burn import BucketCounts, EventCounts, bucket_counts
from spyglass.store.protocol import RollupQuery

#: The step chosen when none is asked for gives about this many points over the window.
DEFAULT_POINTS = 90


def series_step_s(start_ns: int, end_ns: int, bucket_s: int, step_s: int | None = None) -> int:
    """The step of a series: the one asked for, else about ``DEFAULT_POINTS`` over the window, rounded up to
    whole rollup buckets (a series cannot be finer than them)."""
    wanted = step_s if step_s is not None else math.ceil((end_ns - start_ns) / 1e9 / DEFAULT_POINTS)
    return max(1, math.ceil(max(1, wanted) / bucket_s)) * bucket_s


@dataclass(frozen=True)
class SloSeries:
    """An SLO's requests per step over ``[start_ns, end_ns)``; steps are epoch-aligned, the first one holding
    ``start_ns``, and dense (a step without requests is there, empty)."""

    slo: Slo
    start_ns: int
    end_ns: int
    step_s: int
    steps: BucketCounts

    def as_json(self) -> dict[str, Any]:
        points = []
        for start, total, bad in zip(
            self.steps.starts_ns.tolist(), self.steps.totals.tolist(), self.steps.bad.tolist(), strict=True
        ):
            counts = EventCounts(total, bad)
            share = counts.bad_share()
            points.append(
                {
                    "start_ns": start,
                    "requests": total,
                    "bad_requests": bad,
                    "sli": None if share is None else 1.0 - share,
                    "burn_rate": counts.burn_rate(self.slo.objective),
                }
            )
        return {
            "slo_id": self.slo.id,
            "objective": self.slo.objective,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "step_s": self.step_s,
            "points": points,
        }


def slo_series(rollups: RollupReader, slo: Slo, start_ns: int, end_ns: int, step_s: int) -> SloSeries:
    """The SLO's requests and bad requests per ``step_s`` (a whole number of rollup buckets) over the window."""
    step_ns = step_s * 10**9
    first_ns = start_ns - start_ns % step_ns
    n_steps = max(1, -(-(end_ns - first_ns) // step_ns))
    starts = first_ns + np.arange(n_steps, dtype=np.int64) * step_ns
    rows = rollups.read(RollupQuery(first_ns, end_ns, slo.service, slo.operation, resolution_s=step_s))
    counts = bucket_counts(rows, slo.latency_ms)
    totals = np.zeros(n_steps, np.float64)
    bad = np.zeros(n_steps, np.float64)
    if len(counts):
        # Rows not yet stored come at the aggregator's own bucket size: each falls in the step holding its start.
        index = (counts.starts_ns - first_ns) // step_ns
        inside = (index >= 0) & (index < n_steps)
        np.add.at(totals, index[inside], counts.totals[inside])
        np.add.at(bad, index[inside], counts.bad[inside])
    return SloSeries(slo, start_ns, end_ns, step_s, BucketCounts(starts, totals, bad))

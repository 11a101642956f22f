"""How long spyglass keeps what it stores, and how the rollups coarsen as they age.

Shared vocabulary: the configuration builds a ``RetentionPolicy``, the satellite's retention worker applies it to
the store, the ClickHouse store writes it into its tables' TTLs, and the API shows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MINUTE_S = 60
HOUR_S = 3_600
DAY_S = 86_400

_UNIT_S = {"s": 1, "m": MINUTE_S, "h": HOUR_S, "d": DAY_S}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> int:
    """Whole seconds of ``90s``, ``15m``, ``36h``, ``7d`` (a bare number is seconds); ValueError otherwise."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise ValueError(f"a duration is a number with s, m, h or d (90s, 15m, 36h, 7d), got {text!r}")
    number, unit = match.groups()
    return round(float(number) * _UNIT_S[unit or "s"])


def format_duration(seconds: int) -> str:
    """The shortest exact spelling ``parse_duration`` reads back (``7d``, ``36h``, ``90s``)."""
    for unit, size in (("d", DAY_S), ("h", HOUR_S), ("m", MINUTE_S)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class RollupTier:
    """Rollup rows whose bucket ended more than ``after_s`` ago are kept in buckets of ``bucket_s`` seconds."""

    after_s: int
    bucket_s: int


#: The aggregator writes 10 s base rows and 60 s attribute rows. After a day they are merged into minutes (the SLO
#: burn windows, at most 6 h, and the UI's charts of the last day keep their 10 s detail); after a week into hours
#: (a chart of last month has hour steps anyway). Merging sums counts and errors per sketch bin, which is exactly
#: merging the latency sketches: a p99 over any window keeps the sketch's 0.5% accuracy over 100% of spans.
DEFAULT_ROLLUP_TIERS = (
    RollupTier(after_s=DAY_S, bucket_s=MINUTE_S),
    RollupTier(after_s=7 * DAY_S, bucket_s=HOUR_S),
)


@dataclass(frozen=True)
class RetentionPolicy:
    """Spans (with their trace summaries) and logs are deleted ``retention_s`` after they started; rollup rows
    ``rollup_retention_s`` after their bucket ended, coarsened by ``rollup_tiers`` on the way."""

    retention_s: int = 7 * DAY_S
    rollup_retention_s: int = 90 * DAY_S
    rollup_tiers: tuple[RollupTier, ...] = DEFAULT_ROLLUP_TIERS

    def __post_init__(self) -> None:
        if self.retention_s <= 0 or self.rollup_retention_s <= 0:
            raise ValueError("retention must be positive")
        for tier in self.rollup_tiers:
            if tier.after_s <= 0 or tier.bucket_s <= 0 or HOUR_S % tier.bucket_s:
                raise ValueError(f"a rollup tier needs a positive age and a bucket dividing an hour: {tier}")

    def bucket_s_at(self, age_s: float, stored_bucket_s: int) -> int:
        """The bucket size rows of ``stored_bucket_s`` have once ``age_s`` old (the coarsest tier reached)."""
        size = stored_bucket_s
        for tier in self.rollup_tiers:
            if age_s >= tier.after_s:
                size = max(size, tier.bucket_s)
        return size

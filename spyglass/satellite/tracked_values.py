"""Which values of each aggregated attribute key are kept apart: the first seen until a key's table is full, then
new values fold into ``__other__`` as candidates, and once a minute (counts halving, so old traffic fades) a
candidate that clearly outweighs the weakest tracked value takes its place. The set changes only at those
moments, so a flood of distinct values never adds more than the bound to a minute of rollups."""

from __future__ import annotations

from dataclasses import dataclass, field

#: A candidate value must have at least this (decayed) count to displace a tracked one.
MIN_PROMOTION_COUNT = 4.0


@dataclass
class KeyValues:
    """The values of one attribute key: tracked ones (with decayed counts) and candidates folded away."""

    tracked: dict[str, float] = field(default_factory=dict)
    candidates: dict[str, float] = field(default_factory=dict)

    def rebalance(self, max_values: int) -> None:
        """Halve every count (old traffic fades), then let candidates that clearly outweigh the weakest
        tracked values take their places."""
        self.tracked = {value: count / 2 for value, count in self.tracked.items()}
        self.candidates = {v: c / 2 for v, c in self.candidates.items() if c / 2 >= 0.5}
        if not self.candidates:
            return
        rising = sorted(self.candidates.items(), key=lambda item: -item[1])
        weakest = sorted(self.tracked.items(), key=lambda item: item[1])
        for (new_value, new_count), (old_value, old_count) in zip(rising, weakest, strict=False):
            if new_count <= max(2 * old_count, MIN_PROMOTION_COUNT):
                break
            del self.tracked[old_value]
            del self.candidates[new_value]
            self.tracked[new_value] = new_count
            self.candidates[old_value] = old_count
        self.candidates = top_values(self.candidates, 2 * max_values)


def top_values(counts: dict[str, float], n: int) -> dict[str, float]:
    return dict(sorted(counts.items(), key=lambda item: -item[1])[:n])

"""A benchmark's figures as records, so ``bench/all.py`` can put every benchmark in one table.

Each benchmark prints its own table for a person; it also hands its headline figures to ``record``, which writes
them as JSON lines to the file named by ``SPYGLASS_BENCH_FIGURES`` when that is set (``bench/all.py`` sets it)
and does nothing otherwise. A figure carries its target, when the project states one, and the ceiling it is
measured against in the same run (the decode rate of the same bodies, say), since machines differ threefold and
only ratios travel.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass

#: The file ``record`` appends to; unset, figures are only printed by the benchmark itself.
FIGURES_FILE_ENV = "SPYGLASS_BENCH_FIGURES"


@dataclass(frozen=True)
class Figure:
    """One measured figure; ``at_most``/``at_least`` state its target, ``ceiling`` its same-run ceiling."""

    bench: str
    name: str
    value: float
    unit: str
    at_most: float | None = None
    at_least: float | None = None
    ceiling: float | None = None
    conditions: str = ""

    @property
    def met(self) -> bool | None:
        """Whether the figure meets its target; None when it has none."""
        if self.at_most is not None:
            return self.value <= self.at_most
        if self.at_least is not None:
            return self.value >= self.at_least
        return None

    @property
    def target(self) -> str:
        if self.at_most is not None:
            return f"<= {self.at_most:g}"
        if self.at_least is not None:
            return f">= {self.at_least:g}"
        return ""

    @property
    def of_ceiling(self) -> float | None:
        """The figure as a share of its ceiling."""
        return self.value / self.ceiling if self.ceiling else None


def record(figures: Iterable[Figure]) -> None:
    """Append the figures to ``$SPYGLASS_BENCH_FIGURES`` as JSON lines (when it is set)."""
    path = os.environ.get(FIGURES_FILE_ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        for figure in figures:
            out.write(json.dumps(asdict(figure)) + "\n")


def read(path: str) -> list[Figure]:
    """The figures a run recorded, in order."""
    with open(path, encoding="utf-8") as lines:
        return [Figure(**json.loads(line)) for line in lines if line.strip()]

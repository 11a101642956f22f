"""The definition of folding an answer's quietest values, written plainly, to check ``top_values`` against: the
busiest ``limit - 1`` values over every part (ties by name; ``other`` itself never), the rest renamed ``other``
and their rows summed."""

from __future__ import annotations

import collections
from collections.abc import Iterable

import pyarrow as pa
import pytest

Row = tuple[object, ...]


def cell_rows(table: pa.Table) -> list[Row]:
    """``(value, start_ns, bin, weight, error_weight)`` rows, values as plain strings."""
    return [
        (str(r["value"]), r["start_ns"], r["bin"], r["weight"], r["error_weight"]) for r in table.to_pylist()
    ]


def kept_values(parts: Iterable[list[Row]], limit: int, other: str) -> set[str] | None:
    """The values keeping their name, None when every one does."""
    totals: dict[str, float] = collections.defaultdict(float)
    for rows in parts:
        for row in rows:
            totals[str(row[0])] += float(row[3])  # type: ignore[arg-type]
    if sum(1 for t in totals.values() if t) <= limit:
        return None
    ranked = sorted((v for v in totals if v != other), key=lambda v: (-totals[v], v))
    return set(ranked[: limit - 1])


def folded(rows: list[Row], kept: set[str] | None, other: str) -> list[Row]:
    """``rows`` with the values not kept named ``other``, summed by cell; sorted, weights approximate."""
    sums: dict[Row, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for value, start, bin_, weight, errors in rows:
        name = value if kept is None or value in kept else other
        cell = sums[(name, start, bin_)]
        cell[0] += float(weight)  # type: ignore[arg-type]
        cell[1] += float(errors)  # type: ignore[arg-type]
    return sorted((*key, pytest.approx(w), pytest.approx(e)) for key, (w, e) in sums.items())

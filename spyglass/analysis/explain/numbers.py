"""How explain's numbers are shown: milliseconds, rounded shares, percentages; NaN (an empty SQL average) is
shown as nothing."""

from __future__ import annotations

import math


def ms(ns: float | None) -> float | None:
    return None if ns is None or (isinstance(ns, float) and math.isnan(ns)) else round(ns / 1e6, 3)


def rounded(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), digits)


def clip(x: float) -> float:
    """A share of the symptom, within [0, 1]."""
    return 0.0 if math.isnan(x) else min(1.0, max(0.0, x))


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.0f}%"

"""Query-string parsing for the API: typed values or a 400 that names the bad parameter."""

from __future__ import annotations

from starlette.datastructures import QueryParams


class BadRequest(ValueError):
    """A request parameter is malformed; the message names it."""


#: Every integer parameter must fit the stores' 64-bit columns (nanosecond times, counts).
INT64_MAX = 2**63 - 1
#: Largest duration filter, in ms (a year): beyond it, ns values would overflow 64 bits.
MAX_DURATION_MS = 365 * 86_400 * 1_000.0
#: Largest series step, in seconds (a year).
MAX_STEP_S = 365 * 86_400


def optional_int(
    params: QueryParams, name: str, minimum: int | None = None, maximum: int = INT64_MAX
) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise BadRequest(f"{name} must be >= {minimum}, got {value}")
    if not -INT64_MAX <= value <= maximum:
        raise BadRequest(f"{name} must be at most {maximum}, got {raw[:40]!r}")
    return value


def optional_float(params: QueryParams, name: str) -> float | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a number, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise BadRequest(f"{name} must be a finite non-negative number, got {raw!r}")
    if value > MAX_DURATION_MS:
        raise BadRequest(f"{name} must be at most {MAX_DURATION_MS:.0f}, got {raw[:40]!r}")
    return value


def optional_bool(params: QueryParams, name: str) -> bool | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise BadRequest(f"{name} must be true or false, got {raw!r}")


def attribute_filters(params: QueryParams, name: str = "attr") -> tuple[tuple[str, str], ...]:
    """Repeated ``KEY:VALUE`` parameters (split at the first colon, so values may contain colons)."""
    pairs = []
    for raw in params.getlist(name):
        key, sep, value = raw.partition(":")
        if not sep or not key:
            raise BadRequest(f"{name} must be KEY:VALUE, got {raw!r}")
        pairs.append((key, value))
    return tuple(pairs)


_GO_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def go_duration_ns(raw: str, name: str) -> int:
    """Jaeger's durations are Go duration strings (``1.5s``, ``200ms``, ``1h30m``)."""
    text = raw.strip()
    total = 0.0
    number = ""
    unit = ""
    parsed_any = False
    for char in text + "\0":
        if char.isdigit() or char == ".":
            if unit:
                total += _unit_value(number, unit, raw, name)
                parsed_any = True
                number, unit = "", ""
            number += char
        elif char == "\0":
            if number or unit:
                total += _unit_value(number, unit, raw, name)
                parsed_any = True
        else:
            unit += char
    if not parsed_any:
        raise BadRequest(f"{name} must be a duration like 100ms or 1.5s, got {raw!r}")
    return int(total)


def _unit_value(number: str, unit: str, raw: str, name: str) -> float:
    if unit not in _GO_UNITS_NS or not number:
        raise BadRequest(f"{name} must be a duration like 100ms or 1.5s, got {raw!r}")
    try:
        return float(number) * _GO_UNITS_NS[unit]
    except ValueError:
        raise BadRequest(f"{name} must be a duration like 100ms or 1.5s, got {raw!r}") from None

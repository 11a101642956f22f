"""Query parameters declared once, with their bounds: FastAPI validates them and documents them in
``/openapi.json``; a value out of bounds is a 400 whose message names the parameter and the bound
(``api/refusals.py``)."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import Query
from pydantic import BeforeValidator, Field, StringConstraints

from spyglass.model.schema import KIND_CODES


class BadRequest(ValueError):
    """A request is malformed in a way no declared bound says; the message names what is wrong."""


#: Every integer parameter must fit the stores' 64-bit columns (nanosecond times, counts).
INT64_MAX = 2**63 - 1
#: Largest duration filter, in ms (a year): beyond it, ns values would overflow 64 bits.
MAX_DURATION_MS = 365 * 86_400 * 1_000.0
#: Largest series step, in seconds (a year).
MAX_STEP_S = 365 * 86_400
DEFAULT_WINDOW_NS = 3_600 * 10**9


def _blank_is_absent(value: object) -> object:
    return None if value == "" else value


#: An empty parameter (``?service=``) means the same as an absent one, as it always has to browsers and forms.
BLANK_IS_ABSENT = BeforeValidator(_blank_is_absent)
_Ns = Annotated[int, Field(ge=0, le=INT64_MAX)]

StartNs = Annotated[
    _Ns | None, BLANK_IS_ABSENT, Query(description="Window start, ns since the epoch (default: end_ns - 1 h)")
]
EndNs = Annotated[
    _Ns | None, BLANK_IS_ABSENT, Query(description="Window end, ns since the epoch (default: now)")
]
StepS = Annotated[
    Annotated[int, Field(ge=1, le=MAX_STEP_S)] | None,
    BLANK_IS_ABSENT,
    Query(description="Series step, in seconds"),
]
DurationMs = Annotated[
    Annotated[float, Field(ge=0, le=MAX_DURATION_MS, allow_inf_nan=False)] | None,
    BLANK_IS_ABSENT,
    Query(description="A duration bound, in ms"),
]
Flag = Annotated[bool | None, BLANK_IS_ABSENT, Query()]
Service = Annotated[str | None, BLANK_IS_ABSENT, Query(description="A service name")]
Operation = Annotated[str | None, BLANK_IS_ABSENT, Query(description="An operation (span name)")]
Text = Annotated[str | None, BLANK_IS_ABSENT, Query()]
Kind = Annotated[
    Literal["server", "client", "internal", "producer", "consumer"] | None,
    BLANK_IS_ABSENT,
    Query(
        description="Only spans of this kind (a client's call and the server span answering it often share "
        "a name; default: every kind)"
    ),
]


def kind_codes(kind: str | None) -> tuple[int, ...]:
    """The ``SpanKind`` codes a ``kind`` parameter stands for; none (every kind) when it is absent."""
    return KIND_CODES[kind] if kind is not None else ()


AttributeFilters = Annotated[
    list[Annotated[str, StringConstraints(pattern=r"^[^:]+:")]],
    Query(description="KEY:VALUE, repeatable; split at the first colon, so values may contain colons"),
]


Limit = Annotated[
    Annotated[int, Field(ge=1, le=INT64_MAX)] | None, BLANK_IS_ABSENT, Query(description="How many at most")
]


def window(start_ns: int | None, end_ns: int | None) -> tuple[int, int]:
    """``start_ns``/``end_ns`` parameters, defaulting to the last hour."""
    end = end_ns or time.time_ns()
    start = end - DEFAULT_WINDOW_NS if start_ns is None else start_ns
    if start > end:
        raise BadRequest("start_ns must not be after end_ns")
    return start, end


def attribute_pairs(values: list[str]) -> tuple[tuple[str, str], ...]:
    """Repeated ``KEY:VALUE`` parameters as pairs (the declared pattern already refused values with no key)."""
    return tuple((key, value) for key, _, value in (raw.partition(":") for raw in values))


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

"""What a service level objective says: on which root operation, good meaning fast enough (latency) or not
failed (errors), what share must be good, over what period. Checked here once, for the ``--slos`` file and the
API alike, so both refuse the same things with the same words."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

#: The period an SLO is judged over when it names none (four whole weeks, so every weekday counts alike).
DEFAULT_PERIOD_DAYS = 28
MAX_PERIOD_DAYS = 366
#: An id is what URLs carry: derived from the name when not given.
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: The fields an SLO definition may carry (anything else is refused, so a misspelt key is not ignored).
FIELDS = ("id", "name", "service", "operation", "objective", "kind", "latency_ms", "period_days", "owner")

SloKind = Literal["latency", "errors"]
_T = TypeVar("_T")


class InvalidSlo(ValueError):
    """An SLO definition refused; the message names the field and what it must be."""


@dataclass(frozen=True)
class Slo:
    """One SLO. ``latency_ms`` set: a latency SLO (a request at most this slow is good); else an error SLO (a
    request whose span did not fail is good). ``defined_in`` is ``api`` or the file it was read from."""

    id: str
    name: str
    service: str
    operation: str
    objective: float
    latency_ms: float | None = None
    period_days: int = DEFAULT_PERIOD_DAYS
    owner: str | None = None
    defined_in: str = "api"

    @property
    def kind(self) -> SloKind:
        return "latency" if self.latency_ms is not None else "errors"

    @property
    def error_budget(self) -> float:
        """The share of requests allowed to be bad."""
        return 1.0 - self.objective

    @property
    def period_ns(self) -> int:
        return self.period_days * 86_400 * 10**9

    @property
    def read_only(self) -> bool:
        """Defined in a file: the API cannot delete it (the file would bring it back at the next start)."""
        return self.defined_in != "api"

    def definition(self) -> dict[str, Any]:
        """The SLO as the API and the webhook give it."""
        return {
            "id": self.id,
            "name": self.name,
            "service": self.service,
            "operation": self.operation,
            "objective": self.objective,
            "kind": self.kind,
            "latency_ms": self.latency_ms,
            "period_days": self.period_days,
            "owner": self.owner,
            "defined_in": self.defined_in,
        }

    def stored(self) -> dict[str, Any]:
        """What is written to keep an API-defined SLO across restarts (read back by ``slo_from_fields``)."""
        out = {k: v for k, v in self.definition().items() if k not in ("defined_in", "kind")}
        return {k: v for k, v in out.items() if v is not None}


def slug(name: str) -> str:
    """An id made of a name: lower case, runs of anything else than letters and digits as one dash."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].rstrip("-")
    return text or "slo"


def slo_from_fields(fields: Mapping[str, Any], defined_in: str = "api") -> Slo:
    """Build an SLO from its JSON/YAML fields, or raise ``InvalidSlo`` naming the first bad field."""
    if not isinstance(fields, Mapping):
        raise InvalidSlo("an SLO must be an object")
    unknown = sorted(str(key) for key in fields if key not in FIELDS)
    if unknown:
        raise InvalidSlo(f"unknown field {unknown[0]!r} (an SLO has {', '.join(FIELDS)})")
    name = _required(_text(fields, "name"), "name")
    service = _required(_text(fields, "service"), "service")
    operation = _required(_text(fields, "operation"), "operation")
    objective = _required(_number(fields, "objective"), "objective")
    if not 0.0 < objective < 1.0:
        raise InvalidSlo(f"objective must be in (0, 1), e.g. 0.99, got {objective!r}")
    kind = fields.get("kind")
    if kind is not None and kind not in ("latency", "errors"):
        raise InvalidSlo(f"kind must be 'latency' or 'errors', got {kind!r}")
    latency_ms = _number(fields, "latency_ms")
    if kind == "latency" and latency_ms is None:
        raise InvalidSlo("latency_ms is required for a latency SLO (requests at most this slow are good)")
    if kind == "errors" and latency_ms is not None:
        raise InvalidSlo("latency_ms is for latency SLOs; an errors SLO counts failed requests")
    if latency_ms is not None and latency_ms <= 0:
        raise InvalidSlo(f"latency_ms must be > 0, got {latency_ms!r}")
    period = fields.get("period_days", DEFAULT_PERIOD_DAYS)
    if period is None:
        period = DEFAULT_PERIOD_DAYS
    if isinstance(period, bool) or not isinstance(period, int) or not 1 <= period <= MAX_PERIOD_DAYS:
        raise InvalidSlo(
            f"period_days must be a whole number of days in [1, {MAX_PERIOD_DAYS}], got {period!r}"
        )
    owner = _text(fields, "owner")
    slo_id = _text(fields, "id") or slug(name)
    if not ID_PATTERN.match(slo_id):
        raise InvalidSlo(
            f"id must be lower-case letters, digits, '.', '_' or '-' (at most 64), got {slo_id!r}"
        )
    return Slo(
        id=slo_id,
        name=name,
        service=service,
        operation=operation,
        objective=objective,
        latency_ms=latency_ms,
        period_days=period,
        owner=owner,
        defined_in=defined_in,
    )


def _required(value: _T | None, key: str) -> _T:
    if value is None:
        raise InvalidSlo(f"{key} is required")
    return value


def _text(fields: Mapping[str, Any], key: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidSlo(f"{key} must be a non-empty string, got {value!r}")
    return value.strip()


def _number(fields: Mapping[str, Any], key: str) -> float | None:
    value = fields.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidSlo(f"{key} must be a number, got {value!r}")
    return float(value)

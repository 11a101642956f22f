"""Alerts: one per burn of an SLO, opened when a burn-rate pair starts firing and resolved when none fires any
more, kept in memory (the open ones and the most recent resolved ones) for ``GET /api/v1/alerts``.

The alert's JSON is what the API answers and the webhook receives, the same object when it fires and when it
resolves (same ``id``, ``state`` and ``resolved_ns`` changed, burn rates as of that moment).
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from spyglass.analysis.slo import Slo
from spyglass.analysis.slo_burn import PAIR_BY_NAME, SloStatus
from spyglass.analysis.slo_explain import BurnExplained
from spyglass.analysis.slo_windows import ExplainWindows

#: Resolved alerts kept for the API (the oldest are forgotten first).
MAX_RESOLVED = 200

AlertState = Literal["firing", "resolved"]


@dataclass
class Alert:
    """One burn of one SLO, with why (explain's findings on the burning window) and who to tell."""

    slo: Slo
    started_ns: int
    #: The pairs firing when it opened (``fast``, ``slow``).
    pairs: tuple[str, ...]
    status: SloStatus
    #: The share of the period's error budget the burning window used.
    budget_burnt: float
    windows: ExplainWindows
    explained: BurnExplained | None
    explain_error: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    state: AlertState = "firing"
    resolved_ns: int | None = None

    def summary(self) -> str:
        """One line a person reads first: the SLO, how fast it burns, the likeliest cause and its owner."""
        pair = PAIR_BY_NAME[self.pairs[0]]
        rates = self.status.burn_rates()
        burning = ", ".join(
            f"{rates[name]:.1f}x over {name}"
            for name in (pair.long_window, pair.short_window)
            if rates[name] is not None
        )
        slo = f"SLO {self.slo.name!r} ({self.slo.service} {self.slo.operation})"
        if self.state == "resolved":
            return f"resolved: {slo} burns under its thresholds again ({burning or 'no requests'})"
        what = f"{slo} burns its error budget {burning}"
        if self.explain_error is not None:
            return f"{what}; explain failed ({self.explain_error})"
        findings = self.explained.findings if self.explained is not None else []
        if not findings:
            return f"{what}; explain found no cause"
        top = findings[0]
        owner = f" (owner {top['owner']})" if top.get("owner") else ""
        return f"{what}; likeliest cause: {top['summary']}{owner}"

    def as_json(self) -> dict[str, Any]:
        """The API's ``Alert`` object, which the webhook receives too."""
        explained = self.explained
        return {
            "id": self.id,
            "slo": self.slo.definition(),
            "state": self.state,
            "started_ns": self.started_ns,
            "resolved_ns": self.resolved_ns,
            "pairs_firing": list(self.pairs),
            "burn_rates": self.status.burn_rates(),
            "budget_remaining": self.status.budget_remaining,
            "budget_burnt": self.budget_burnt,
            "summary": self.summary(),
            "routing_key": explained.routing_key if explained is not None else self.slo.owner,
            "owners": explained.owners if explained is not None else [o for o in [self.slo.owner] if o],
            "findings": explained.findings if explained is not None else [],
            "symptom": explained.symptom if explained is not None else None,
            "explained": {**self.windows.as_json(), "signal": self.slo.kind},
            "explain_error": self.explain_error,
        }


class AlertBook:
    """Open alerts by SLO, and the recently resolved ones (thread-safe)."""

    def __init__(self, max_resolved: int = MAX_RESOLVED) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, Alert] = {}
        self._resolved: deque[Alert] = deque(maxlen=max_resolved)

    def open_for(self, slo_id: str) -> Alert | None:
        with self._lock:
            return self._open.get(slo_id)

    def open_alerts(self) -> list[Alert]:
        with self._lock:
            return list(self._open.values())

    def opened(self, alert: Alert) -> None:
        with self._lock:
            self._open[alert.slo.id] = alert

    def update(self, alert: Alert, status: SloStatus) -> None:
        """The open alert's burn rates and budget as of the latest evaluation."""
        with self._lock:
            alert.status = status

    def resolve(self, alert: Alert, now_ns: int, status: SloStatus | None) -> None:
        with self._lock:
            if status is not None:
                alert.status = status
            alert.state, alert.resolved_ns = "resolved", now_ns
            self._open.pop(alert.slo.id, None)
            self._resolved.append(alert)

    def recent(self) -> list[dict[str, Any]]:
        """Open and resolved alerts as JSON, newest first (by when they started)."""
        with self._lock:
            alerts = [alert.as_json() for alert in [*self._open.values(), *self._resolved]]
        return sorted(alerts, key=lambda a: a["started_ns"], reverse=True)

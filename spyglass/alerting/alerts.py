"""Alerts: one per burn of an SLO, opened when a burn-rate pair starts firing and resolved when none fires any
more, kept (the open ones and the most recent resolved ones) for ``GET /api/v1/alerts``.

The alert's JSON is what the API answers and the webhook receives, the same object when it fires and when it
resolves (same ``id``, ``state`` and ``resolved_ns`` changed, burn rates as of that moment).

With a file (``<data-dir>/alerts.json``) the book survives a restart: an alert open before it keeps its id, so
a burn that goes on is not announced twice, and one that stopped meanwhile resolves under the id it fired with.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from spyglass.analysis.slo import Slo
from spyglass.analysis.slo_burn import PAIR_BY_NAME, SloStatus
from spyglass.analysis.slo_explain import BurnExplained
from spyglass.analysis.slo_windows import ExplainWindows

log = logging.getLogger(__name__)

#: Resolved alerts kept for the API (the oldest are forgotten first).
MAX_RESOLVED = 200
#: Where a server keeps its alerts, in its data directory.
ALERTS_FILE_NAME = "alerts.json"

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
    #: When ``explained`` was worked out: at the open, then again while the alert fires (``SloEvaluator``).
    explained_ns: int
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
            "explained_ns": self.explained_ns,
            "explain_error": self.explain_error,
        }


class AlertBook:
    """Open alerts by SLO, and the recently resolved ones (thread-safe); kept in ``path`` when given.

    Alerts read back from the file are their JSON: a resolved one is shown as it was; an open one waits in
    ``restored`` until the evaluator's next round adopts it (the SLO still burns: its id and start carry on) or
    resolves it (``resolve_restored``)."""

    def __init__(self, max_resolved: int = MAX_RESOLVED, path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, Alert] = {}
        self._resolved: deque[Alert | dict[str, Any]] = deque(maxlen=max_resolved)
        self._restored: dict[str, dict[str, Any]] = {}
        self._path = path
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:  # a damaged file costs the history, never the server
            log.warning("alerts in %s could not be read (%s); starting without them", path, exc)
            return
        for alert in saved.get("alerts", []) if isinstance(saved, dict) else []:
            if not isinstance(alert, dict) or not isinstance(alert.get("slo"), dict):
                continue
            if alert.get("state") == "firing":
                self._restored[str(alert["slo"].get("id"))] = alert
            else:
                self._resolved.append(alert)

    def _save(self) -> None:
        """Write every alert held, atomically (a crash leaves the old file or the new one). Under the lock."""
        if self._path is None:
            return
        alerts = [
            *(a.as_json() for a in self._open.values()),
            *self._restored.values(),
            *(a if isinstance(a, dict) else a.as_json() for a in self._resolved),
        ]
        partial = self._path.with_name(self._path.name + ".tmp")
        try:
            partial.write_text(json.dumps({"alerts": alerts}), encoding="utf-8")
            os.replace(partial, self._path)
        except OSError as exc:
            log.warning("alerts could not be saved to %s: %s", self._path, exc)

    def restored(self) -> dict[str, dict[str, Any]]:
        """Alerts open before a restart that no round has adopted or resolved yet, by SLO id."""
        with self._lock:
            return dict(self._restored)

    def adopt_restored(self, slo_id: str) -> dict[str, Any] | None:
        """Take the alert open before a restart for this SLO (its id and start carry on in the new one)."""
        with self._lock:
            return self._restored.pop(slo_id, None)

    def resolve_restored(self, slo_id: str, now_ns: int, status: SloStatus | None) -> dict[str, Any] | None:
        """Resolve an alert open before a restart whose SLO no longer burns (or is gone); its resolved JSON."""
        with self._lock:
            alert = self._restored.pop(slo_id, None)
            if alert is None:
                return None
            slo = alert["slo"]
            resolved = {
                **alert,
                "state": "resolved",
                "resolved_ns": now_ns,
                "summary": f"resolved: SLO {slo.get('name')!r} ({slo.get('service')} {slo.get('operation')}) "
                "burns under its thresholds again",
            }
            if status is not None:
                resolved["burn_rates"] = status.burn_rates()
                resolved["budget_remaining"] = status.budget_remaining
            self._resolved.append(resolved)
            self._save()
            return resolved

    def open_for(self, slo_id: str) -> Alert | None:
        with self._lock:
            return self._open.get(slo_id)

    def open_alerts(self) -> list[Alert]:
        with self._lock:
            return list(self._open.values())

    def opened(self, alert: Alert) -> None:
        with self._lock:
            self._open[alert.slo.id] = alert
            self._save()

    def update(self, alert: Alert, status: SloStatus) -> None:
        """The open alert's burn rates and budget as of the latest evaluation."""
        with self._lock:
            alert.status = status

    def explained_again(
        self,
        alert: Alert,
        windows: ExplainWindows,
        explained: BurnExplained | None,
        error: str | None,
        now_ns: int,
    ) -> None:
        """The open alert's explanation as worked out again at ``now_ns``."""
        with self._lock:
            alert.windows, alert.explained, alert.explain_error = windows, explained, error
            alert.explained_ns = now_ns
            self._save()

    def resolve(self, alert: Alert, now_ns: int, status: SloStatus | None) -> None:
        with self._lock:
            if status is not None:
                alert.status = status
            alert.state, alert.resolved_ns = "resolved", now_ns
            self._open.pop(alert.slo.id, None)
            self._resolved.append(alert)
            self._save()

    def recent(self) -> list[dict[str, Any]]:
        """Open and resolved alerts as JSON, newest first (by when they started)."""
        with self._lock:
            alerts = [
                *(a.as_json() for a in self._open.values()),
                *self._restored.values(),
                *(a if isinstance(a, dict) else a.as_json() for a in self._resolved),
            ]
        return sorted(alerts, key=lambda a: int(a.get("started_ns") or 0), reverse=True)

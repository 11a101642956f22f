"""The SLO evaluator: a background thread that, every ``--slo-interval`` seconds, measures each SLO from the
rollups and opens or resolves its alert. It never runs on the ingest path: it reads what the API reads, at the
background threads' lower CPU priority.

An SLO has at most one open alert. When a burn-rate pair starts firing, the alert is opened: explain runs on the
burning window against its baseline (``analysis.slo_windows``), and one notification goes to every notifier (the
log, the webhook). While any pair still fires nothing more is sent, but every ``reexplain_s`` the burn is
explained again on what arrived since (``SloEvaluator._explain_again``), so the alert read through the API and
the resolved notification carry the latest answer, not that of the burn's first minute. When no pair fires, the
alert resolves and a resolved notification (same id) follows. An SLO deleted while its alert is open resolves it. An alert open
before a restart is adopted by the first round that finds its SLO still burning (same id and start, nothing
sent again) or resolved by the first that does not.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from spyglass.alerting.alerts import Alert
from spyglass.alerting.watch import SloWatch
from spyglass.analysis.slo import Slo
from spyglass.analysis.slo_burn import PAIR_BY_NAME
from spyglass.analysis.slo_explain import BurnExplained, ExplainSources, explain_burn
from spyglass.analysis.slo_meter import SloMeasure
from spyglass.analysis.slo_windows import explain_windows
from spyglass.background import Periodic

log = logging.getLogger(__name__)

#: How often an open alert's burn is explained again while it fires, by default (``--alert-reexplain``).
REEXPLAIN_S = 300.0
#: The burning window of a later explanation: from the burn's start, but at most this long, ending now.
REEXPLAIN_WINDOW_NS = 15 * 60 * 10**9


class Notifier(Protocol):
    """Where an alert's notifications go (its JSON, when it fires and when it resolves)."""

    def notify(self, alert: dict[str, Any]) -> None: ...


class LogNotifier:
    """One INFO line per notification: the alert's id, state and summary."""

    def notify(self, alert: dict[str, Any]) -> None:
        log.info("alert %s %s: %s", alert["id"], alert["state"], alert["summary"])


class SloEvaluator:
    """Measures every SLO each ``interval_s`` in a thread of its own (``start``/``stop``); ``evaluate`` runs
    one round in the caller's thread."""

    def __init__(
        self,
        watch: SloWatch,
        sources: ExplainSources,
        notifiers: Sequence[Notifier],
        interval_s: float,
        clock: Callable[[], int] = time.time_ns,
        reexplain_s: float = REEXPLAIN_S,
    ) -> None:
        self.watch = watch
        self.sources = sources
        self.notifiers = list(notifiers)
        self.interval_s = interval_s
        self.reexplain_ns = int(reexplain_s * 1e9)
        self.clock = clock
        self.rounds = 0
        self._periodic = Periodic("spyglass-slo-evaluator", interval_s, self.evaluate, "SLO evaluation")

    def start(self) -> None:
        self._periodic.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._periodic.stop(timeout_s)

    def evaluate(self, now_ns: int | None = None) -> None:
        """One round: every SLO measured, alerts opened and resolved (a round whose reads fail is skipped)."""
        now = self.clock() if now_ns is None else now_ns
        book = self.watch.alerts
        slos = self.watch.catalog.all()
        try:
            measures = self.watch.meter.measure_all(slos, now)
        except Exception:
            log.exception("SLOs could not be measured")
            return
        for slo in slos:
            if self._periodic.stopping.is_set():
                return
            measure = measures[slo.id]
            alert = book.open_for(slo.id)
            if measure.status.firing and alert is None:
                self._open(slo, measure, now, book.adopt_restored(slo.id))
            elif measure.status.firing and alert is not None:
                book.update(alert, measure.status)
                if now - alert.explained_ns >= self.reexplain_ns:
                    self._explain_again(slo, alert, now)
            elif alert is not None:
                book.resolve(alert, now, measure.status)
                self._send(alert)
            else:
                self._send_json(book.resolve_restored(slo.id, now, measure.status))
        for alert in book.open_alerts():
            if self.watch.catalog.get(alert.slo.id) is None:
                book.resolve(alert, now, None)
                self._send(alert)
        for slo_id in book.restored():
            if self.watch.catalog.get(slo_id) is None:
                self._send_json(book.resolve_restored(slo_id, now, None))
        self.rounds += 1

    def _open(self, slo: Slo, measure: SloMeasure, now_ns: int, restored: dict[str, Any] | None) -> None:
        """Open the SLO's alert, explained; one open before a restart (``restored``) carries on under its id and
        start, and is not sent again."""
        status = measure.status
        pair = PAIR_BY_NAME[status.firing[0]]
        sources = self.sources
        windows = explain_windows(sources.store, sources.rollups, slo, measure.recent, pair, now_ns)
        explained: BurnExplained | None = None
        error: str | None = None
        try:
            explained = explain_burn(sources, slo, windows)
        except Exception as exc:  # the alert still goes out, saying explain failed
            log.exception("explain failed for the burn of SLO %r", slo.id)
            error = f"{type(exc).__name__}: {exc}"
        burnt = status.budget_spent(measure.recent.window(windows.start_ns))
        alert = Alert(slo, now_ns, status.firing, status, burnt, windows, explained, now_ns, error)
        if restored is not None:
            alert.id, alert.started_ns = str(restored["id"]), int(restored["started_ns"])
        self.watch.alerts.opened(alert)
        if restored is None:
            self._send(alert)

    def _explain_again(self, slo: Slo, alert: Alert, now_ns: int) -> None:
        """Explain the burn again on what has arrived since: the burning window from the burn's start (at most
        ``REEXPLAIN_WINDOW_NS`` back) to now, against the baseline found at the open, which was healthy. Windows
        chosen afresh would put the baseline in the minutes just before the short window, and a burn that has
        gone on that long burns there too. The new answer replaces the old one unless it fails or finds no cause
        where the old one found some; an alert that could not be explained at the open is tried again."""
        book = self.watch.alerts
        windows = dataclasses.replace(
            alert.windows, start_ns=max(alert.windows.start_ns, now_ns - REEXPLAIN_WINDOW_NS), end_ns=now_ns
        )
        explained: BurnExplained | None = None
        error: str | None = None
        try:
            explained = explain_burn(self.sources, slo, windows)
        except Exception as exc:
            log.exception("explain failed again for the burn of SLO %r", slo.id)
            error = f"{type(exc).__name__}: {exc}"
        old = alert.explained
        if old is not None and (explained is None or (old.findings and not explained.findings)):
            windows, explained, error = alert.windows, old, alert.explain_error
        book.explained_again(alert, windows, explained, error, now_ns)

    def _send(self, alert: Alert) -> None:
        self._send_json(alert.as_json())

    def _send_json(self, body: dict[str, Any] | None) -> None:
        if body is None:
            return
        for notifier in self.notifiers:
            try:
                notifier.notify(body)
            except Exception:
                log.exception("an alert notifier failed")

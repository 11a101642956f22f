"""The SLOs, their measures and their alerts in one place, shared by the evaluator and the API (which reads
and changes SLOs and reads alerts through it)."""

from __future__ import annotations

from dataclasses import dataclass

from spyglass.alerting.alerts import AlertBook
from spyglass.alerting.slo_catalog import SloCatalog
from spyglass.alerting.webhook import WebhookSender
from spyglass.analysis.slo_meter import SloMeter


@dataclass(frozen=True)
class SloWatch:
    """What the server watches: the SLOs defined, the meter that measures them, their alerts, and the webhook
    they are sent to (``None`` without ``--alert-webhook``)."""

    catalog: SloCatalog
    meter: SloMeter
    alerts: AlertBook
    webhook: WebhookSender | None = None

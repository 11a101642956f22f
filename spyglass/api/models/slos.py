"""SLOs and their alerts: the SLO a client posts, an SLO as answered with its SLI, budget and burn rates (from
100% of spans), and an alert as ``GET /api/v1/alerts`` answers it and ``--alert-webhook`` receives it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from spyglass.api.models.analysis import Finding, Signal, Symptom
from spyglass.api.models.common import Answer, ApiModel

SloKind = Literal["latency", "errors"]
PairName = Literal["fast", "slow"]


class SloRequest(BaseModel):
    """An SLO to watch. ``latency_ms`` present: a latency SLO (requests at most this slow are good); absent: an
    errors SLO (requests whose span did not fail are good). A key not listed is refused."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None, description="Lower-case letters, digits, '.', '_', '-'; default: made of the name"
    )
    name: str = Field(min_length=1)
    service: str = Field(min_length=1, description="The service of the operation")
    operation: str = Field(min_length=1, description="The root (entry) span's name")
    objective: float = Field(gt=0, lt=1, description="The share of requests that must be good, e.g. 0.99")
    kind: SloKind | None = Field(default=None, description="Optional; implied by latency_ms")
    latency_ms: float | None = Field(default=None, gt=0, description="Latency SLOs: the slowest good request")
    period_days: int = Field(default=28, ge=1, le=366, description="The period the budget is spent over")
    owner: str | None = Field(
        default=None, description="The team the SLO's alerts go to when no cause has one"
    )


class SloDefinition(ApiModel):
    """An SLO as defined."""

    id: str
    name: str
    service: str
    operation: str
    objective: float
    kind: SloKind
    latency_ms: float | None = Field(description="null for an errors SLO")
    period_days: int
    owner: str | None
    defined_in: str = Field(description="api, or the --slos file (read-only through the API)")


class BurnRates(ApiModel):
    """The bad share of each window's requests over the share the objective allows (1: the budget lasts the
    period exactly); null for a window without requests."""

    m5: float | None = Field(alias="5m")
    m30: float | None = Field(alias="30m")
    h1: float | None = Field(alias="1h")
    h6: float | None = Field(alias="6h")


class SloStatus(SloDefinition):
    """An SLO with its numbers, from the rollups of 100% of spans."""

    sli: float | None = Field(description="The good share of the period's requests; null without requests")
    budget_remaining: float = Field(
        description="Share of the period's error budget left (negative: overspent)"
    )
    burn_rates: BurnRates
    firing: list[PairName] = Field(description="fast: 1 h and 5 m both burn >= 14.4; slow: 6 h and 30 m >= 6")
    requests: float = Field(description="Requests in the period (adjusted counts)")
    bad_requests: float
    evaluated_ns: int = Field(description="When these numbers were read, ns since the epoch")


class SloAnswer(SloStatus, Answer):
    """``GET /api/v1/slos/{id}`` and ``POST /api/v1/slos``: one SLO and its numbers."""


class SlosAnswer(Answer):
    """``GET /api/v1/slos``: every SLO watched, file-defined first."""

    slos: list[SloStatus]


class SloPoint(ApiModel):
    """One step of an SLO's series: its requests, how many were bad, and what that makes of the SLI and the
    burn rate over that step alone."""

    start_ns: int = Field(description="The step's start, ns since the epoch")
    requests: float = Field(description="Requests that started in the step (adjusted counts)")
    bad_requests: float
    sli: float | None = Field(description="The good share of the step's requests; null without requests")
    burn_rate: float | None = Field(
        description="The step's bad share over the share the objective allows; null without requests"
    )


class SloSeriesAnswer(Answer):
    """``GET /api/v1/slos/{id}/series``: the SLO's SLI step by step, from the rollups of 100% of spans."""

    slo_id: str
    objective: float
    start_ns: int
    end_ns: int
    step_s: int = Field(description="The step used: the one asked for, rounded up to whole rollup buckets")
    points: list[SloPoint] = Field(description="Every step of the window, oldest first (epoch-aligned)")


class SloDeleted(Answer):
    """``DELETE /api/v1/slos/{id}``: the SLO is no longer watched (its open alert resolves)."""

    deleted: str = Field(description="The id")


class AlertFinding(Finding):
    """One of explain's findings on the burning window, with links to its example traces."""

    links: list[str] = Field(description="/traces/{trace_id} of the regression examples")


class AlertWindows(ApiModel):
    """What explain compared: the burning window against a healthy baseline, of the same length when the alert
    opened; explained again while it fires, the burning window runs on to then (at most its last 15 minutes)."""

    start_ns: int
    end_ns: int
    baseline_start_ns: int
    baseline_end_ns: int
    baseline_rule: Literal["day_before", "before_burn"] = Field(
        description="day_before: the same hours a day earlier; before_burn: just before the burn began"
    )
    signal: Signal


class Alert(ApiModel):
    """One burn of an SLO, explained. The same object is POSTed to --alert-webhook when it fires and when it
    resolves."""

    id: str
    slo: SloDefinition
    state: Literal["firing", "resolved"]
    started_ns: int
    resolved_ns: int | None = Field(description="null while firing")
    pairs_firing: list[PairName] = Field(description="The pairs firing when the alert opened")
    burn_rates: BurnRates = Field(description="As of the latest evaluation (at resolution, once resolved)")
    budget_remaining: float
    budget_burnt: float = Field(description="Share of the period's error budget the burning window used")
    summary: str = Field(description="One line: the SLO, its burn, the likeliest cause and its owner")
    routing_key: str | None = Field(description="The top finding's owner, else the SLO's, else its service's")
    owners: list[str] = Field(description="The findings' owners, likeliest cause first, then the SLO's")
    findings: list[AlertFinding] = Field(description="explain's top findings for the burning window")
    symptom: Symptom | None = Field(
        description="The symptom's numbers in both windows; null if explain failed"
    )
    explained: AlertWindows
    explained_ns: int | None = Field(
        default=None,
        description="When the findings were worked out: at the open, then again every --alert-reexplain "
        "seconds while it fires (absent on alerts saved by versions before it)",
    )
    explain_error: str | None = Field(
        description="Why explain failed, when it did (the alert is sent anyway)"
    )


class WebhookStatus(ApiModel):
    """What the webhook sender did since start."""

    queued: int
    delivered: int
    retried: int
    failed: int
    dropped: int


class AlertsAnswer(Answer):
    """``GET /api/v1/alerts``: open and recently resolved alerts, newest first."""

    alerts: list[Alert]
    webhook: WebhookStatus | None = Field(description="null without --alert-webhook")

"""Answers of the routes the web UI needs beyond the resources (``/api/v1/ui/*``, and one trace's critical path):
a service overview with owners, a latency heatmap, deployments."""

from __future__ import annotations

from pydantic import Field

from spyglass.api.models.analysis import MetricPoint
from spyglass.api.models.common import Answer, ApiModel


class ServiceOverview(ApiModel):
    """One service's RED numbers over the window (its entry spans: server and consumer; all spans for a service
    that has none) and its owning team."""

    service: str
    owner: str | None = Field(description="The owning team, when the service's resource names one")
    count: int
    errors: int
    p50_ms: float | None = Field(description="null when the service has no span in the window")
    p99_ms: float | None
    series: list[MetricPoint] = Field(
        description="One point per step, empty steps included (no p90_ms, max_ms)"
    )
    rate_per_s: float = Field(description="Requests per second over the time data covers")


class ServiceOverviewAnswer(Answer):
    """``GET /api/v1/ui/services``: the home page in one request, every known service (sorted by name)."""

    start_ns: int
    end_ns: int
    step_s: int = Field(description="The step used: a whole number of rollup buckets")
    services: list[ServiceOverview]
    covered_start_ns: int = Field(description="Where data begins in the window, ns since the epoch")
    covered_end_ns: int = Field(description="The window's end, or now if earlier")
    covered_s: float = Field(description="The covered time rates divide by, s (at least 1)")


class Heatmap(Answer):
    """``GET /api/v1/ui/latency-heatmap``: span counts per time step and log-spaced latency band, from 100% of
    spans."""

    step_s: int
    starts_ns: list[int] = Field(description="Each step's start, ns since the epoch")
    edges_ms: list[float] = Field(description="Band edges, ms (one more than bands); empty when no span")
    counts: list[list[int]] = Field(description="Per step, per band; empty when no span")
    total: int = Field(description="Spans counted")


class VersionSeen(ApiModel):
    """When one ``service.version`` value was first seen in the window."""

    service: str
    version: str
    first_seen_ns: int = Field(description="Start of its first span, ns since the epoch")
    deployed: bool = Field(description="First seen well after the service's first version of the window")


class DeploymentsAnswer(Answer):
    """``GET /api/v1/ui/deployments``: versions in the order they were first seen."""

    key: str = Field(description="The attribute read (service.version)")
    versions: list[VersionSeen]


class CriticalSpan(ApiModel):
    """A span on a trace's critical path."""

    span_id: str = Field(description="16 lowercase hex characters")
    critical_ns: int = Field(description="Its exclusive time on the critical path, ns")


class TraceCriticalPathAnswer(Answer):
    """``GET /api/v1/traces/{trace_id}/critical-path``: the spans on one trace's critical path."""

    trace_id: str = Field(description="32 lowercase hex characters")
    spans: list[CriticalSpan]

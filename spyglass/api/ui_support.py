"""Endpoints the web UI needs beyond the API reference's contract: a service overview with owners, a latency
heatmap, deployments (new ``service.version`` values), and one trace's critical path.

Each answer comes from what the API already reads: the rollups of 100% of spans (stored plus not yet stored),
the recall buffer, and the store; the numbers are worked out in ``spyglass.analysis.ui_views``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pyarrow as pa
from fastapi import APIRouter
from starlette.responses import Response

from spyglass.analysis.critical_path import COLUMNS as CRITICAL_PATH_COLUMNS
from spyglass.analysis.metrics import data_coverage, with_rates
from spyglass.analysis.traces import trace_spans
from spyglass.analysis.ui_views import (
    VERSION_KEY,
    critical_path_spans,
    deployments,
    latency_heatmap,
    red_overview,
)
from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.models import (
    DeploymentsAnswer,
    ErrorAnswer,
    Heatmap,
    ServiceOverviewAnswer,
    TraceCriticalPathAnswer,
)
from spyglass.api.params import BadRequest, EndNs, Operation, Service, StartNs, StepS, window
from spyglass.api.span_json import parse_trace_id
from spyglass.store.protocol import RollupQuery, ScanFilter

OWNER_LOOKBACK_NS = 60 * 10**9
MAX_STEPS = 2_000


def _step_s(wanted_s: int | None, start_ns: int, end_ns: int, bucket_s: int) -> int:
    """The requested step rounded up to whole rollup buckets, refused when it makes too many points."""
    wanted = wanted_s or bucket_s
    step_s = max(1, math.ceil(wanted / bucket_s)) * bucket_s
    if (end_ns - start_ns) // (step_s * 10**9) > MAX_STEPS:
        raise BadRequest(f"step_s={step_s} makes more than {MAX_STEPS} points in the window")
    return step_s


def _base_rollups(
    ctx: ApiContext,
    start_ns: int,
    end_ns: int,
    step_s: int,
    service: str | None = None,
    operation: str | None = None,
) -> pa.Table:
    return ctx.rollups.read(RollupQuery(start_ns, end_ns, service, operation, resolution_s=step_s))


def service_overview(
    ctx: ApiContext, start_ns: int, end_ns: int, step_s: int, now_ns: int | None = None
) -> dict[str, Any]:
    """The home page in one request; rates (``rate_per_s``) divide by the time data covers (``covered_s``),
    not the window's length."""
    if now_ns is None:
        now_ns = time.time_ns()
    rows = _base_rollups(ctx, start_ns, end_ns, step_s)
    _learn_owners(ctx, end_ns)
    overview = red_overview(rows, ctx.store.services(), ctx.ownership.owner, start_ns, end_ns, step_s)
    return with_rates(overview, data_coverage(ctx.rollups, start_ns, end_ns, now_ns))


def _learn_owners(ctx: ApiContext, end_ns: int) -> None:
    """Owners come from resources (``service.namespace``, ``team``...): learn them from the recall buffer's
    recent spans, and for services it does not hold, from their stored spans of the window's last minute
    (bounded, so a service that never names an owner costs little on every request)."""
    recent = ctx.live.recent_spans(include_decided=True)
    if recent.num_rows:
        ctx.ownership.learn(recent.select(["service", "resource"]))
    for service in ctx.store.services():
        if ctx.ownership.owner(service) is None:
            found = ctx.store.scan(
                ["service", "resource"], end_ns - OWNER_LOOKBACK_NS, end_ns, ScanFilter(service=service)
            )
            if found.num_rows:
                ctx.ownership.learn(found.slice(0, 1))


def heatmap(
    ctx: ApiContext, start_ns: int, end_ns: int, step_s: int, service: str | None, operation: str | None
) -> dict[str, Any]:
    rows = _base_rollups(ctx, start_ns, end_ns, step_s, service=service, operation=operation)
    return latency_heatmap(rows, start_ns, end_ns, step_s)


def versions(ctx: ApiContext, start_ns: int, end_ns: int, service: str | None) -> dict[str, Any]:
    rows = ctx.rollups.read(RollupQuery(start_ns, end_ns, service, attr_key=VERSION_KEY))
    buffered = ctx.live.recent_spans(include_decided=True)
    return deployments(rows, buffered, ctx.store, start_ns, end_ns)


def trace_critical_path(ctx: ApiContext, trace_id: bytes) -> dict[str, Any] | None:
    """The spans on one trace's critical path with their exclusive critical time, for the waterfall."""
    spans = trace_spans(ctx.store, ctx.live, trace_id).select(CRITICAL_PATH_COLUMNS)
    if spans.num_rows == 0:
        return None
    # A recent kept trace is both stored and still buffered: the walk needs each span once.
    spans = spans.group_by(CRITICAL_PATH_COLUMNS, use_threads=False).aggregate([])
    return {"trace_id": trace_id.hex(), "spans": critical_path_spans(spans)}


def router(ctx: ApiContext) -> APIRouter:
    """What the web UI reads beyond the core resources."""
    api = APIRouter(tags=["ui"], responses={400: {"model": ErrorAnswer}})

    def bucket_s() -> int:
        return ctx.rollups.bucket_s

    @api.get(
        "/api/v1/ui/services", response_model=ServiceOverviewAnswer, summary="Service overview with owners"
    )
    def overview(start_ns: StartNs = None, end_ns: EndNs = None, step_s: StepS = None) -> Response:
        start, end = window(start_ns, end_ns)
        return json_response(service_overview(ctx, start, end, _step_s(step_s, start, end, bucket_s())))

    @api.get("/api/v1/ui/latency-heatmap", response_model=Heatmap, summary="Latency heatmap")
    def latency(
        service: Service = None,
        operation: Operation = None,
        start_ns: StartNs = None,
        end_ns: EndNs = None,
        step_s: StepS = None,
    ) -> Response:
        start, end = window(start_ns, end_ns)
        step = _step_s(step_s, start, end, bucket_s())
        return json_response(heatmap(ctx, start, end, step, service, operation))

    @api.get("/api/v1/ui/deployments", response_model=DeploymentsAnswer, summary="New service.version values")
    def deployed(service: Service = None, start_ns: StartNs = None, end_ns: EndNs = None) -> Response:
        start, end = window(start_ns, end_ns)
        return json_response(versions(ctx, start, end, service))

    @api.get(
        "/api/v1/traces/{trace_id}/critical-path",
        response_model=TraceCriticalPathAnswer,
        responses={404: {"model": ErrorAnswer}},
        summary="One trace's critical path",
    )
    def critical(trace_id: str) -> Response:
        wanted = parse_trace_id(trace_id)
        if wanted is None:
            raise BadRequest("trace_id must be 32 lowercase hex characters")
        answer = trace_critical_path(ctx, wanted)
        if answer is None:
            return json_response({"error": "trace not found"}, status=404)
        return json_response(answer)

    return api

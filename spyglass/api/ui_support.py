"""Endpoints the web UI needs beyond the API reference's contract: a service overview with owners, a latency
heatmap, deployments (new ``service.version`` values), and one trace's critical path.

Each answer is read and worked out in ``spyglass.analysis.ui_answers``; the handlers translate HTTP.
"""

from __future__ import annotations

import math

from fastapi import APIRouter
from starlette.responses import Response

from spyglass.analysis.ui_answers import UiSources, heatmap, service_overview, trace_critical_path, versions
from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.models import (
    DeploymentsAnswer,
    ErrorAnswer,
    Heatmap,
    ServiceOverviewAnswer,
    TraceCriticalPathAnswer,
)
from spyglass.api.params import (
    BadRequest,
    EndNs,
    Kind,
    Operation,
    Service,
    StartNs,
    StepS,
    kind_codes,
    window,
)
from spyglass.api.span_json import parse_trace_id

MAX_STEPS = 2_000


def _step_s(wanted_s: int | None, start_ns: int, end_ns: int, bucket_s: int) -> int:
    """The requested step rounded up to whole rollup buckets, refused when it makes too many points."""
    wanted = wanted_s or bucket_s
    step_s = max(1, math.ceil(wanted / bucket_s)) * bucket_s
    if (end_ns - start_ns) // (step_s * 10**9) > MAX_STEPS:
        raise BadRequest(f"step_s={step_s} makes more than {MAX_STEPS} points in the window")
    return step_s


def router(ctx: ApiContext) -> APIRouter:
    """What the web UI reads beyond the core resources."""
    api = APIRouter(tags=["ui"], responses={400: {"model": ErrorAnswer}})
    sources = UiSources(ctx.store, ctx.live, ctx.rollups, ctx.ownership)

    def bucket_s() -> int:
        return ctx.rollups.bucket_s

    @api.get(
        "/api/v1/ui/services", response_model=ServiceOverviewAnswer, summary="Service overview with owners"
    )
    def overview(start_ns: StartNs = None, end_ns: EndNs = None, step_s: StepS = None) -> Response:
        start, end = window(start_ns, end_ns)
        return json_response(service_overview(sources, start, end, _step_s(step_s, start, end, bucket_s())))

    @api.get("/api/v1/ui/latency-heatmap", response_model=Heatmap, summary="Latency heatmap")
    def latency(
        service: Service = None,
        operation: Operation = None,
        start_ns: StartNs = None,
        end_ns: EndNs = None,
        step_s: StepS = None,
        kind: Kind = None,
    ) -> Response:
        start, end = window(start_ns, end_ns)
        step = _step_s(step_s, start, end, bucket_s())
        return json_response(heatmap(sources, start, end, step, service, operation, kind_codes(kind)))

    @api.get("/api/v1/ui/deployments", response_model=DeploymentsAnswer, summary="New service.version values")
    def deployed(service: Service = None, start_ns: StartNs = None, end_ns: EndNs = None) -> Response:
        start, end = window(start_ns, end_ns)
        return json_response(versions(sources, start, end, service))

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
        answer = trace_critical_path(sources, wanted)
        if answer is None:
            return json_response({"error": "trace not found"}, status=404)
        return json_response(answer)

    return api

"""``GET /api/v1/metrics``: JSON RED metrics from the rollups (``GET /metrics`` is in ``api/prometheus.py``)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from spyglass.analysis.metrics import MetricsQuery, data_coverage, query_metrics, with_rates
from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.models import ErrorAnswer, Metrics
from spyglass.api.params import (
    BLANK_IS_ABSENT,
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

#: A series longer than this is refused (400): ask for a larger ``step_s`` or a shorter window.
MAX_SERIES_POINTS = 5_000


def router(ctx: ApiContext) -> APIRouter:
    """RED metrics of 100% of spans, whole-window or as series, grouped by an attribute if asked."""
    api = APIRouter(tags=["spyglass"], responses={400: {"model": ErrorAnswer}})

    @api.get("/api/v1/metrics", response_model=Metrics, summary="RED metrics from the rollups of every span")
    def metrics(
        service: Service = None,
        operation: Operation = None,
        start_ns: StartNs = None,
        end_ns: EndNs = None,
        group_by: Annotated[
            str | None, BLANK_IS_ABSENT, Query(description="service, operation, or an attribute key")
        ] = None,
        step_s: StepS = None,
        kind: Kind = None,
    ) -> Response:
        start, end = window(start_ns, end_ns)
        if step_s is not None and (end - start) // (step_s * 1_000_000_000) > MAX_SERIES_POINTS:
            raise BadRequest(f"step_s={step_s} makes more than {MAX_SERIES_POINTS} points in the window")
        query = MetricsQuery(
            start_ns=start,
            end_ns=end,
            service=service,
            operation=operation,
            group_by=group_by,
            step_s=step_s,
            kinds=kind_codes(kind),
        )
        result = query_metrics(ctx.store, ctx.rollups, ctx.live, query)
        coverage = data_coverage(ctx.rollups, start, end, time.time_ns())
        return json_response(with_rates(result, coverage))

    return api

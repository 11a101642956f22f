"""``GET /api/v1/metrics``: JSON RED metrics from the rollups (``GET /metrics`` is in ``api/prometheus.py``)."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spyglass.analysis.metrics import MetricsQuery, data_coverage, query_metrics, with_rates
from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.params import MAX_STEP_S, BadRequest, optional_int
from spyglass.api.v1 import window

#: A series longer than this is refused (400): ask for a larger ``step_s`` or a shorter window.
MAX_SERIES_POINTS = 5_000


def routes(ctx: ApiContext) -> list[Route]:
    def metrics(request: Request) -> Response:
        params = request.query_params
        start_ns, end_ns = window(request)
        step_s = optional_int(params, "step_s", minimum=1, maximum=MAX_STEP_S)
        if step_s is not None and (end_ns - start_ns) // (step_s * 1_000_000_000) > MAX_SERIES_POINTS:
            raise BadRequest(f"step_s={step_s} makes more than {MAX_SERIES_POINTS} points in the window")
        query = MetricsQuery(
            start_ns=start_ns,
            end_ns=end_ns,
            service=params.get("service") or None,
            operation=params.get("operation") or None,
            group_by=params.get("group_by") or None,
            step_s=step_s,
        )
        satellite = ctx.satellite
        result = query_metrics(ctx.store, satellite.aggregator, satellite.buffer, query)
        coverage = data_coverage(ctx.store, satellite.aggregator, start_ns, end_ns, time.time_ns())
        return json_response(with_rates(result, coverage))

    return [Route("/api/v1/metrics", metrics)]

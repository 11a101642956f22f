"""``GET /api/v1/critical-path``: where the time of one kind of request goes, and what fixing each part could buy."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spyglass.analysis.critical_path import critical_path_contributions
from spyglass.analysis.traces import spans_of_traces
from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.params import BadRequest, optional_int
from spyglass.api.v1 import window
from spyglass.store.protocol import TraceQuery

DEFAULT_TRACES = 1_000
MAX_TRACES = 20_000


def routes(ctx: ApiContext) -> list[Route]:
    def critical_path(request: Request) -> Response:
        params = request.query_params
        service = params.get("service")
        operation = params.get("operation")
        if not service or not operation:
            raise BadRequest("service and operation are required (the root span of the traces to analyze)")
        start_ns, end_ns = window(request)
        limit = optional_int(params, "limit", minimum=1) or DEFAULT_TRACES
        if limit > MAX_TRACES:
            raise BadRequest(f"limit must be <= {MAX_TRACES}, got {limit}")
        found = ctx.store.find_traces(
            TraceQuery(service=service, operation=operation, start_ns=start_ns, end_ns=end_ns, limit=limit)
        )
        return json_response(critical_path_contributions(spans_of_traces(ctx.store, found)))

    return [Route("/api/v1/critical-path", critical_path)]

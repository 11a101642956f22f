"""``GET /api/v1/critical-path``: where the time of one kind of request goes, and what fixing each part could buy."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field
from starlette.responses import Response

from spyglass.analysis.critical_path import critical_path_contributions
from spyglass.analysis.traces import spans_of_traces
from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.models import CriticalPathAnswer, ErrorAnswer
from spyglass.api.params import BLANK_IS_ABSENT, BadRequest, EndNs, Operation, Service, StartNs, window
from spyglass.store.protocol import TraceQuery

DEFAULT_TRACES = 1_000
MAX_TRACES = 20_000


def router(ctx: ApiContext) -> APIRouter:
    """Critical-path analysis over the traces of one root operation."""
    api = APIRouter(tags=["spyglass"], responses={400: {"model": ErrorAnswer}})

    @api.get(
        "/api/v1/critical-path",
        response_model=CriticalPathAnswer,
        summary="Where the time of one kind of request goes, and what fixing each part could buy",
    )
    def critical_path(
        service: Service = None,
        operation: Operation = None,
        start_ns: StartNs = None,
        end_ns: EndNs = None,
        limit: Annotated[
            Annotated[int, Field(ge=1, le=MAX_TRACES)] | None,
            BLANK_IS_ABSENT,
            Query(description=f"Traces to analyze (default {DEFAULT_TRACES})"),
        ] = None,
    ) -> Response:
        if not service or not operation:
            raise BadRequest("service and operation are required (the root span of the traces to analyze)")
        start, end = window(start_ns, end_ns)
        found = ctx.store.find_traces(
            TraceQuery(
                service=service,
                operation=operation,
                start_ns=start,
                end_ns=end,
                limit=limit or DEFAULT_TRACES,
            )
        )
        return json_response(critical_path_contributions(spans_of_traces(ctx.store, found)))

    return api

"""``GET /api/v1/compare?a=TRACE_ID[,TRACE_ID...]&b=TRACE_ID[,...]``: two traces or two sets side by side."""

from __future__ import annotations

from typing import Annotated

import pyarrow as pa
from fastapi import APIRouter, Query
from starlette.responses import Response

from spyglass.analysis.compare import compare_traces
from spyglass.analysis.traces import trace_spans
from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.models import CompareResponse, ErrorAnswer
from spyglass.api.params import BadRequest
from spyglass.api.span_json import parse_trace_id
from spyglass.model.schema import SPAN_SCHEMA

MAX_TRACES_PER_SIDE = 200


TraceIds = Annotated[str, Query(description="Trace ids, comma-separated (at most 200)")]


def _side(ctx: ApiContext, raw: str, name: str) -> pa.Table:
    ids = [part for part in raw.split(",") if part.strip()]
    if not ids:
        raise BadRequest(f"{name} must list one or more trace ids, comma-separated")
    if len(ids) > MAX_TRACES_PER_SIDE:
        raise BadRequest(f"{name} lists {len(ids)} traces; at most {MAX_TRACES_PER_SIDE}")
    tables = []
    for text in ids:
        trace_id = parse_trace_id(text)
        if trace_id is None:
            raise BadRequest(f"{name}: {text!r} is not a trace id (32 hex characters)")
        spans = trace_spans(ctx.store, ctx.live, trace_id)
        if spans.num_rows == 0:
            raise BadRequest(f"{name}: trace {text} is not known")
        tables.append(spans)
    return pa.concat_tables(tables).cast(SPAN_SCHEMA)


def router(ctx: ApiContext) -> APIRouter:
    """Two traces, or two sets of traces, side by side."""
    api = APIRouter(tags=["spyglass"], responses={400: {"model": ErrorAnswer}})

    @api.get("/api/v1/compare", response_model=CompareResponse, summary="Two traces or two sets side by side")
    def compare(a: TraceIds = "", b: TraceIds = "") -> Response:
        return json_response(compare_traces(_side(ctx, a, "a"), _side(ctx, b, "b")))

    return api

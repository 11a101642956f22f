"""``GET /api/v1/compare?a=TRACE_ID[,TRACE_ID...]&b=TRACE_ID[,...]``: two traces or two sets side by side."""

from __future__ import annotations

import pyarrow as pa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spyglass.analysis.compare import compare_traces
from spyglass.analysis.traces import trace_spans
from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.params import BadRequest
from spyglass.api.span_json import parse_trace_id
from spyglass.model.schema import SPAN_SCHEMA

MAX_TRACES_PER_SIDE = 200


def _side(ctx: ApiContext, request: Request, name: str) -> pa.Table:
    raw = request.query_params.get(name, "")
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
        spans = trace_spans(ctx.store, ctx.satellite, trace_id)
        if spans.num_rows == 0:
            raise BadRequest(f"{name}: trace {text} is not known")
        tables.append(spans)
    return pa.concat_tables(tables).cast(SPAN_SCHEMA)


def routes(ctx: ApiContext) -> list[Route]:
    def compare(request: Request) -> Response:
        return json_response(compare_traces(_side(ctx, request, "a"), _side(ctx, request, "b")))

    return [Route("/api/v1/compare", compare)]

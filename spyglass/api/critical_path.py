"""``GET /api/v1/critical-path``: where the time of one kind of request goes, and what fixing each part could buy."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spyglass.analysis.critical_path import COLUMNS, critical_path_contributions
from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.params import BadRequest, optional_int
from spyglass.api.v1 import window
from spyglass.model.schema import SPAN_SCHEMA
from spyglass.store.protocol import Store, TraceQuery

DEFAULT_TRACES = 1_000
MAX_TRACES = 20_000
#: Up to this many traces are read one by one; more are read with one scan of their time range.
_FETCH_ONE_BY_ONE = 20


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
        return json_response(critical_path_contributions(trace_spans(ctx.store, found)))

    return [Route("/api/v1/critical-path", critical_path)]


def trace_spans(store: Store, summaries: pa.Table) -> pa.Table:
    """Every stored span (``COLUMNS`` and ``sample_weight``) of the traces ``find_traces`` returned."""
    columns = [*COLUMNS, "sample_weight"]
    if summaries.num_rows == 0:
        return pa.schema([_field(name) for name in columns]).empty_table()
    trace_ids = summaries.column("trace_id")
    if summaries.num_rows <= _FETCH_ONE_BY_ONE:
        return pa.concat_tables([store.trace(t).select(columns) for t in trace_ids.to_pylist()])
    # Every span of a trace starts within [trace start, trace start + duration].
    starts = summaries.column("start_ns").to_numpy()
    ends = starts + summaries.column("duration_ns").to_numpy()
    spans = store.scan(columns, int(starts.min()), int(np.max(ends)) + 1)
    return spans.filter(pc.is_in(spans.column("trace_id"), value_set=trace_ids.combine_chunks()))


def _field(name: str) -> pa.Field:
    return SPAN_SCHEMA.field(name) if name in SPAN_SCHEMA.names else pa.field(name, pa.float64())

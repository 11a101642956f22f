"""spyglass's own JSON API under ``/api/v1`` (the API reference: the README's API section and
``/openapi.json``). Handlers translate HTTP to calls and back, no more."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from spyglass import __version__
from spyglass.analysis.dependencies import COLUMNS as DEPENDENCY_COLUMNS
from spyglass.analysis.dependencies import dependency_edges
from spyglass.analysis.traces import trace_spans
from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.params import BadRequest, attribute_filters, optional_bool, optional_float, optional_int
from spyglass.api.span_json import distinct_spans, hex_id, parse_trace_id, summary_to_json
from spyglass.api.trace_pages import (
    MAX_PAGE_SPANS,
    STREAM_ABOVE_SPANS,
    span_objects,
    stream_trace,
    trace_columns,
    trace_page,
)
from spyglass.model.attributes import typed_attributes
from spyglass.model.log_schema import severity_name
from spyglass.model.schema import KIND_NAMES
from spyglass.satellite.log_writer import LogWriter
from spyglass.satellite.pipeline import Satellite
from spyglass.store.protocol import TraceQuery

MAX_SEARCH_LIMIT = 20_000
MAX_LOG_LIMIT = 10_000
DEFAULT_WINDOW_NS = 3_600 * 10**9


def local_status(
    satellite: Satellite, log_writer: LogWriter | None, ingest: dict[str, dict[str, int]] | None = None
) -> dict[str, Any]:
    """One satellite's own ``/api/v1/status`` (a cluster's answer sums these over its members)."""
    counters = satellite.counters
    return {
        "spans_received": counters.spans_received,
        "spans_rejected": counters.spans_rejected,
        "traces_decided": counters.traces_decided,
        "traces_kept": counters.traces_kept,
        "spans_stored": counters.spans_stored,
        "spans_queued": satellite.queued_spans,
        "spans_late": counters.late_spans,
        "spans_unwritable": counters.spans_unwritable,
        "spans_write_failed": counters.spans_write_failed,
        "logs": asdict(log_writer.counters) if log_writer is not None else None,
        "ingest": ingest or {},
        "recall": {
            "spans": satellite.buffer.spans,
            "bytes": satellite.buffer.nbytes,
            "undecided_spans": satellite.buffer.undecided_spans,
            "max_bytes": satellite.buffer.max_bytes,
            "peak_bytes": satellite.buffer.peak_bytes,
        },
        "version": __version__,
    }


def routes(ctx: ApiContext) -> list[Route]:
    def status(request: Request) -> Response:
        own = local_status(ctx.own_satellite, ctx.log_writer, ctx.ingest_status())
        return json_response(own if ctx.cluster is None else ctx.cluster.status(own))

    def services(request: Request) -> Response:
        return json_response({"services": [{"name": name} for name in ctx.store.services()]})

    def operations(request: Request) -> Response:
        service = request.path_params["service"]
        return json_response(
            {"operations": [{"name": name, "kind": kind} for name, kind in _named_kinds(ctx, service)]}
        )

    def trace(request: Request) -> Response:
        """Small traces answer whole as before; big ones stream, or come as pages or columns on request."""
        trace_id = parse_trace_id(request.path_params["trace_id"])
        if trace_id is None:
            raise BadRequest("trace_id must be 32 lowercase hex characters")
        params = request.query_params
        shape = params.get("format") or "spans"
        if shape not in ("spans", "columns"):
            raise BadRequest(f"format must be spans or columns, got {shape[:40]!r}")
        offset = optional_int(params, "offset", minimum=0)
        limit = optional_int(params, "limit", minimum=1, maximum=MAX_PAGE_SPANS)
        spans_up_to = optional_int(params, "spans_up_to", minimum=0, maximum=MAX_PAGE_SPANS) or 0
        span_id = params.get("span_id")
        wanted = parse_span_id(span_id) if span_id else None
        spans = distinct_spans(trace_spans(ctx.store, ctx.satellite, trace_id))
        if spans.num_rows == 0:
            return json_response({"error": "trace not found"}, status=404)
        if wanted is not None:
            spans = spans.filter(pc.equal(spans.column("span_id"), pa.scalar(wanted, pa.binary(8))))
            return json_response({"trace_id": trace_id.hex(), "spans": span_objects(spans)})
        if shape == "columns":
            return json_response(trace_columns(trace_id, spans, spans_up_to))
        if offset is not None or limit is not None:
            return json_response(trace_page(trace_id, spans, offset or 0, limit or MAX_PAGE_SPANS))
        if spans.num_rows > STREAM_ABOVE_SPANS:
            return StreamingResponse(stream_trace(trace_id, spans), media_type="application/json")
        return json_response({"trace_id": trace_id.hex(), "spans": span_objects(spans)})

    def trace_logs(request: Request) -> Response:
        trace_id = parse_trace_id(request.path_params["trace_id"])
        if trace_id is None:
            raise BadRequest("trace_id must be 32 lowercase hex characters")
        limit = min(optional_int(request.query_params, "limit", minimum=1) or 1000, MAX_LOG_LIMIT)
        rows = ctx.store.logs_for_traces([trace_id], limit).to_pylist()
        return json_response({"logs": [log_to_json(row) for row in rows]})

    def search(request: Request) -> Response:
        params = request.query_params
        min_ms = optional_float(params, "min_duration_ms")
        max_ms = optional_float(params, "max_duration_ms")
        limit = optional_int(params, "limit", minimum=1) or 20
        query = TraceQuery(
            service=params.get("service") or None,
            operation=params.get("operation") or None,
            attributes=attribute_filters(params),
            min_duration_ns=int(min_ms * 1e6) if min_ms is not None else None,
            max_duration_ns=int(max_ms * 1e6) if max_ms is not None else None,
            error=optional_bool(params, "error"),
            start_ns=optional_int(params, "start_ns", minimum=0),
            end_ns=optional_int(params, "end_ns", minimum=0),
            limit=min(limit, MAX_SEARCH_LIMIT),
        )
        found = ctx.store.find_traces(query)
        return json_response({"traces": [summary_to_json(r) for r in found.to_pylist()]})

    def dependencies(request: Request) -> Response:
        start_ns, end_ns = window(request)
        edges = dependency_edges(ctx.store.scan(DEPENDENCY_COLUMNS, start_ns, end_ns))
        return json_response({"edges": edges.to_pylist()})

    return [
        Route("/api/v1/status", status),
        Route("/api/v1/services", services),
        Route("/api/v1/services/{service}/operations", operations),
        Route("/api/v1/traces/{trace_id}", trace),
        Route("/api/v1/traces/{trace_id}/logs", trace_logs),
        Route("/api/v1/traces", search),
        Route("/api/v1/dependencies", dependencies),
    ]


def log_to_json(row: dict[str, Any]) -> dict[str, Any]:
    """One stored log record (``LOG_SCHEMA`` row) as the API gives it."""
    return {
        "time_ns": row["time_ns"],
        "observed_time_ns": row["observed_time_ns"],
        "trace_id": hex_id(row["trace_id"]),
        "span_id": hex_id(row["span_id"]),
        "severity": row["severity_text"] or severity_name(row["severity_number"]),
        "severity_number": row["severity_number"],
        "body": row["body"],
        "attributes": typed_attributes(row["attributes"], row["attribute_types"]),
        "resource": typed_attributes(row["resource"], row["resource_types"]),
        "service": row["service"],
        "scope": row["scope_name"] or "",
    }


def parse_span_id(text: str) -> bytes:
    """A 16-hex span id, or a 400 naming the parameter."""
    try:
        value = bytes.fromhex(text.strip().lower())
    except ValueError:
        value = b""
    if len(value) != 8:
        raise BadRequest("span_id must be 16 hex characters")
    return value


def window(request: Request) -> tuple[int, int]:
    """``start_ns``/``end_ns`` parameters, defaulting to the last hour."""
    end_ns = optional_int(request.query_params, "end_ns", minimum=0) or time.time_ns()
    start_ns = optional_int(request.query_params, "start_ns", minimum=0)
    if start_ns is None:
        start_ns = end_ns - DEFAULT_WINDOW_NS
    if start_ns > end_ns:
        raise BadRequest("start_ns must not be after end_ns")
    return start_ns, end_ns


def _named_kinds(ctx: ApiContext, service: str) -> list[tuple[str, str]]:
    return [(name, KIND_NAMES.get(kind, "internal")) for name, kind in ctx.store.operations(service)]

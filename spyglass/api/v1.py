"""spyglass's own JSON API under ``/api/v1`` (the API reference: the README's API section and
``/openapi.json``). Handlers translate HTTP to calls and back, no more."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, Query
from pydantic import Field
from starlette.responses import Response, StreamingResponse

from spyglass import __version__
from spyglass.analysis.dependencies import dependency_edges
from spyglass.analysis.traces import trace_spans
from spyglass.api.context import ApiContext, Member
from spyglass.api.json_response import json_response
from spyglass.api.models import (
    DependenciesAnswer,
    ErrorAnswer,
    LogsAnswer,
    OperationsAnswer,
    ServicesAnswer,
    StatusAnswer,
    TraceAnswer,
    TraceColumns,
    TracePage,
    TraceSearchAnswer,
)
from spyglass.api.params import (
    BLANK_IS_ABSENT,
    INT64_MAX,
    AttributeFilters,
    BadRequest,
    DurationMs,
    EndNs,
    Flag,
    Limit,
    Operation,
    Service,
    StartNs,
    attribute_pairs,
    window,
)
from spyglass.api.span_json import distinct_spans, parse_trace_id, summary_to_json
from spyglass.api.trace_pages import (
    MAX_PAGE_SPANS,
    STREAM_ABOVE_SPANS,
    span_objects,
    stream_trace,
    trace_columns,
    trace_page,
)
from spyglass.model.figures import LogCounters, StorageStatus
from spyglass.model.log_schema import log_record_json
from spyglass.model.schema import KIND_NAMES
from spyglass.store.protocol import TraceQuery

MAX_SEARCH_LIMIT = 20_000
MAX_LOG_LIMIT = 10_000


def storage_json(storage: StorageStatus) -> dict[str, Any]:
    """The ``storage`` object of ``/api/v1/status``: bytes on disk, oldest data, the policy, what it did."""
    figures, policy, done = storage.figures, storage.policy, storage.counters
    return {
        "disk_bytes": figures.disk_bytes,
        "free_bytes": figures.free_bytes,
        "oldest_span_ns": figures.oldest_span_ns,
        "oldest_log_ns": figures.oldest_log_ns,
        "oldest_rollup_ns": figures.oldest_rollup_ns,
        "retention_s": policy.retention_s,
        "rollup_retention_s": policy.rollup_retention_s,
        "rollup_tiers": [{"after_s": t.after_s, "bucket_s": t.bucket_s} for t in policy.rollup_tiers],
        "spans_expired": done.spans_expired,
        "logs_expired": done.logs_expired,
        "rollup_rows_expired": done.rollup_rows_expired,
        "rollup_rows_downsampled": done.rollup_rows_downsampled,
        "retention_steps": done.steps,
        "retention_passes": done.passes,
        "last_pass_ns": done.last_pass_ns,
        "longest_step_s": done.longest_step_s,
        "compactions": done.compactions,
        "bytes_compacted": done.bytes_compacted,
        "last_compaction_copy_s": done.last_compaction_copy_s,
        "last_compaction_pause_s": done.last_compaction_pause_s,
    }


def oldest_held_ns(storage: StorageStatus | None) -> int | None:
    """The oldest span or log record the store holds (what ``--retention`` bounds); None when none."""
    if storage is None:
        return None
    held = [t for t in (storage.figures.oldest_span_ns, storage.figures.oldest_log_ns) if t is not None]
    return min(held) if held else None


def local_status(
    satellite: Member,
    logs: LogCounters | None,
    ingest: dict[str, dict[str, int]] | None = None,
    storage: StorageStatus | None = None,
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
        "logs": asdict(logs) if logs is not None else None,
        "ingest": ingest or {},
        "recall": asdict(satellite.recall_figures()),
        "version": __version__,
        "oldest_ns": oldest_held_ns(storage),
        "disk_bytes": storage.figures.disk_bytes if storage is not None else 0,
        "storage": storage_json(storage) if storage is not None else None,
    }


TraceFormat = Annotated[
    Literal["spans", "columns"],
    Query(description="spans: span objects; columns: what the waterfall draws, one list per column"),
]
Offset = Annotated[
    Annotated[int, Field(ge=0, le=INT64_MAX)] | None,
    BLANK_IS_ABSENT,
    Query(description="First span of a page"),
]
PageLimit = Annotated[
    Annotated[int, Field(ge=1, le=MAX_PAGE_SPANS)] | None,
    BLANK_IS_ABSENT,
    Query(description="Spans in a page"),
]
SpansUpTo = Annotated[
    Annotated[int, Field(ge=0, le=MAX_PAGE_SPANS)] | None,
    BLANK_IS_ABSENT,
    Query(description="With format=columns: also the full spans when the trace has at most this many"),
]
SpanId = Annotated[str | None, BLANK_IS_ABSENT, Query(description="Only this span (16 hex characters)")]


def router(ctx: ApiContext) -> APIRouter:
    """spyglass's own resources: status, services, traces, logs, dependencies."""
    api = APIRouter(tags=["spyglass"], responses={400: {"model": ErrorAnswer}})

    @api.get("/api/v1/status", response_model=StatusAnswer, summary="Ingest, sampling and storage counters")
    def status() -> Response:
        storage = ctx.storage() if ctx.storage is not None else None
        own = local_status(ctx.satellite, ctx.log_counters, ctx.ingest_status(), storage)
        return json_response(own if ctx.cluster is None else ctx.cluster.status(own))

    @api.get("/api/v1/services", response_model=ServicesAnswer, summary="Services seen")
    def services() -> Response:
        return json_response({"services": [{"name": name} for name in ctx.store.services()]})

    @api.get(
        "/api/v1/services/{service}/operations",
        response_model=OperationsAnswer,
        summary="A service's operations",
    )
    def operations(service: str) -> Response:
        return json_response(
            {"operations": [{"name": name, "kind": kind} for name, kind in _named_kinds(ctx, service)]}
        )

    @api.get(
        "/api/v1/traces/{trace_id}",
        response_model=TraceAnswer | TracePage | TraceColumns,
        responses={404: {"model": ErrorAnswer}},
        summary="One trace: whole (streamed when big), a page, one span, or columns",
    )
    def trace(
        trace_id: str,
        format: TraceFormat = "spans",  # noqa: A002 (the parameter's public name)
        offset: Offset = None,
        limit: PageLimit = None,
        spans_up_to: SpansUpTo = None,
        span_id: SpanId = None,
    ) -> Response:
        """Small traces answer whole as before; big ones stream, or come as pages or columns on request."""
        wanted_trace = parse_trace_id(trace_id)
        if wanted_trace is None:
            raise BadRequest("trace_id must be 32 lowercase hex characters")
        wanted = parse_span_id(span_id) if span_id else None
        spans = distinct_spans(trace_spans(ctx.store, ctx.live, wanted_trace))
        if spans.num_rows == 0:
            return json_response({"error": "trace not found"}, status=404)
        if wanted is not None:
            spans = spans.filter(pc.equal(spans.column("span_id"), pa.scalar(wanted, pa.binary(8))))
            return json_response({"trace_id": wanted_trace.hex(), "spans": span_objects(spans)})
        if format == "columns":
            return json_response(trace_columns(wanted_trace, spans, spans_up_to or 0))
        if offset is not None or limit is not None:
            return json_response(trace_page(wanted_trace, spans, offset or 0, limit or MAX_PAGE_SPANS))
        if spans.num_rows > STREAM_ABOVE_SPANS:
            return StreamingResponse(stream_trace(wanted_trace, spans), media_type="application/json")
        return json_response({"trace_id": wanted_trace.hex(), "spans": span_objects(spans)})

    @api.get(
        "/api/v1/traces/{trace_id}/logs",
        response_model=LogsAnswer,
        summary="Log records correlated with a trace",
    )
    def trace_logs(trace_id: str, limit: Limit = None) -> Response:
        wanted = parse_trace_id(trace_id)
        if wanted is None:
            raise BadRequest("trace_id must be 32 lowercase hex characters")
        rows = ctx.store.logs_for_traces([wanted], min(limit or 1000, MAX_LOG_LIMIT)).to_pylist()
        return json_response({"logs": [log_to_json(row) for row in rows]})

    @api.get("/api/v1/traces", response_model=TraceSearchAnswer, summary="Search traces")
    def search(
        service: Service = None,
        operation: Operation = None,
        attr: AttributeFilters = [],  # noqa: B006 (FastAPI copies defaults)
        min_duration_ms: DurationMs = None,
        max_duration_ms: DurationMs = None,
        error: Flag = None,
        start_ns: StartNs = None,
        end_ns: EndNs = None,
        limit: Limit = None,
    ) -> Response:
        query = TraceQuery(
            service=service,
            operation=operation,
            attributes=attribute_pairs(attr),
            min_duration_ns=int(min_duration_ms * 1e6) if min_duration_ms is not None else None,
            max_duration_ns=int(max_duration_ms * 1e6) if max_duration_ms is not None else None,
            error=error,
            start_ns=start_ns,
            end_ns=end_ns,
            limit=min(limit or 20, MAX_SEARCH_LIMIT),
        )
        found = ctx.store.find_traces(query)
        return json_response({"traces": [summary_to_json(r) for r in found.to_pylist()]})

    @api.get("/api/v1/dependencies", response_model=DependenciesAnswer, summary="Service graph edges")
    def dependencies(start_ns: StartNs = None, end_ns: EndNs = None) -> Response:
        start, end = window(start_ns, end_ns)
        edges = dependency_edges(ctx.store.calls(start, end))
        return json_response({"edges": edges.to_pylist()})

    return api


#: One stored log record as the API gives it (the alerts' findings give them alike).
log_to_json = log_record_json


def parse_span_id(text: str) -> bytes:
    """A 16-hex span id, or a 400 naming the parameter."""
    try:
        value = bytes.fromhex(text.strip().lower())
    except ValueError:
        value = b""
    if len(value) != 8:
        raise BadRequest("span_id must be 16 hex characters")
    return value


def _named_kinds(ctx: ApiContext, service: str) -> list[tuple[str, str]]:
    return [(name, KIND_NAMES.get(kind, "internal")) for name, kind in ctx.store.operations(service)]

"""Answers of the ``/api/v1`` resource routes: status, services and operations, one trace (whole, a page, one
span, or columns), a trace's logs, trace search, and the service graph."""

from __future__ import annotations

from pydantic import MISSING, Field

from spyglass.api.models.common import (
    Answer,
    ApiModel,
    LogRecord,
    Span,
    SpanKindName,
    StatusName,
    TraceSummary,
)

# --- GET /api/v1/status ----------------------------------------------------------------------------------


class LogsStatus(ApiModel):
    """Log records since start, by what became of them."""

    received: int = Field(description="Accepted and queued")
    rejected: int = Field(description="Invalid records (an OTLP partial success)")
    dropped: int = Field(description="Records without trace context: not kept, by policy")
    stored: int
    write_failures: int = Field(description="Writes that lost records")
    unwritable: int = Field(description="Records the store refused for what they hold")
    write_failed: int = Field(description="Records given up after the retry bound")


class IngestStatus(ApiModel):
    """One receiver's in-flight bound and what it refused."""

    exports_refused: int
    exports_in_flight: int
    bytes_in_flight: int
    max_bytes_in_flight: int
    max_exports_in_flight: int


class RecallStatus(ApiModel):
    """The recall buffer: recent spans held in memory, decided or not."""

    spans: int
    bytes: int
    undecided_spans: int
    max_bytes: int
    peak_bytes: int


class RollupTier(ApiModel):
    """Rollup rows older than ``after_s`` are kept in buckets of ``bucket_s``."""

    after_s: int
    bucket_s: int


class StorageStatus(ApiModel):
    """The store on disk, the oldest data it holds, the retention policy and what applying it did since start."""

    disk_bytes: int = Field(
        description="Bytes of the store's files (DuckDB: database and write-ahead log; ClickHouse: active parts)"
    )
    free_bytes: int = Field(
        description="Of those, space freed by retention that the next writes reuse (DuckDB; 0 for ClickHouse)"
    )
    oldest_span_ns: int | None = Field(description="Start of the oldest stored span; null when none")
    oldest_log_ns: int | None = Field(description="Time of the oldest stored log record; null when none")
    oldest_rollup_ns: int | None = Field(description="Start of the oldest rollup bucket; null when none")
    retention_s: int = Field(description="--retention: spans and logs are kept this long")
    rollup_retention_s: int = Field(description="--rollup-retention: rollups are kept this long")
    rollup_tiers: list[RollupTier] = Field(description="How rollups coarsen as they age")
    spans_expired: int
    logs_expired: int
    rollup_rows_expired: int
    rollup_rows_downsampled: int = Field(description="Stored rollup rows merged into coarser buckets")
    retention_steps: int = Field(description="Short transactions retention ran (one time slice each)")
    retention_passes: int
    last_pass_ns: int | None = Field(description="When the last retention pass ended; null before the first")
    longest_step_s: float = Field(
        description="The longest one retention step took, s (it holds the store's writer at most that long)"
    )
    compactions: int = Field(
        0, description="Times the store's file was rewritten to give deleted rows' space back (DuckDB)"
    )
    bytes_compacted: int = Field(0, description="Bytes those compactions gave back to the filesystem")
    last_compaction_copy_s: float = Field(
        0.0, description="The last compaction's copy of the live rows, s (nothing waits for it)"
    )
    last_compaction_pause_s: float = Field(
        0.0, description="How long writes waited for the last compaction's exchange of files, s"
    )


class ClusterMemberStatus(ApiModel):
    """One member of a cluster as it reported itself (or as this member knows it)."""

    url: str
    owns_traces: bool = Field(description="Whether the member is on the ring (owns a share of trace ids)")
    ring: list[str] = Field(description="The members owning traces, as this member sees the ring")
    spans_from_peers: int
    batches_repeated: int = Field(description="Forwarded batches received again and not ingested twice")
    forward_queued_spans: int
    spans_forwarded: int
    spans_rerouted: int
    spans_lost: int
    requests_failed: int
    spans_received: int
    spans_rejected: int
    traces_decided: int
    traces_kept: int
    spans_stored: int
    recall: RecallStatus


class ClusterStatus(ApiModel):
    """The cluster as the answering member sees it."""

    self: str = Field(description="The answering member's URL")
    members: list[str] = Field(description="Members configured")
    down: list[str] = Field(description="Members believed down")
    missing: list[str] = Field(description="Configured members that did not answer")
    forwarding: bool = Field(description="Whether spans are forwarded to the member owning their trace")
    by_member: list[ClusterMemberStatus]


class StatusAnswer(Answer):
    """``GET /api/v1/status``: ingest, sampling and storage counters since start (summed over a cluster's
    members, with ``cluster`` telling each apart)."""

    spans_received: int
    spans_rejected: int
    traces_decided: int
    traces_kept: int
    spans_stored: int
    spans_queued: int
    spans_late: int
    spans_unwritable: int
    spans_write_failed: int
    logs: LogsStatus | None = Field(description="null when this server takes no logs")
    ingest: dict[str, IngestStatus] = Field(description="By receiver name (otlp_grpc, otlp_http, zipkin...)")
    recall: RecallStatus
    version: str = Field(description="spyglass's version")
    oldest_ns: int | None = Field(
        description="The oldest span or log record held, ns since the epoch (--retention bounds it); null when none"
    )
    disk_bytes: int = Field(description="Bytes of the store on disk (storage.disk_bytes)")
    storage: StorageStatus | None = Field(description="null when this server does not report its store")
    cluster: ClusterStatus | MISSING = Field(default=MISSING, description="Only in a cluster")


# --- services and operations -----------------------------------------------------------------------------


class ServiceName(ApiModel):
    """A service seen in the stored spans."""

    name: str


class ServicesAnswer(Answer):
    """``GET /api/v1/services``."""

    services: list[ServiceName]


class OperationName(ApiModel):
    """An operation (span name) of a service, with the kind of its spans."""

    name: str
    kind: SpanKindName


class OperationsAnswer(Answer):
    """``GET /api/v1/services/{service}/operations``."""

    operations: list[OperationName]


# --- GET /api/v1/traces/{trace_id} -----------------------------------------------------------------------


class TraceAnswer(Answer):
    """``GET /api/v1/traces/{trace_id}``: the whole trace (streamed above 5,000 spans), or with ``span_id``
    only that span. Spans in start order."""

    trace_id: str = Field(description="32 lowercase hex characters")
    spans: list[Span]


class TracePage(Answer):
    """``GET /api/v1/traces/{trace_id}?offset=&limit=``: one page of the trace's spans in start order."""

    trace_id: str = Field(description="32 lowercase hex characters")
    span_count: int = Field(description="Spans in the whole trace")
    offset: int = Field(description="Index of this page's first span")
    next_offset: int | None = Field(description="Where the next page starts; null after the last page")
    spans: list[Span]


class TraceDictionaries(ApiModel):
    """The distinct values the string columns of ``TraceColumns`` index into."""

    service: list[str]
    name: list[str]
    kind: list[SpanKindName]
    status: list[StatusName]


class TraceColumnLists(ApiModel):
    """One list per column, one entry per span, all in the same (start) order."""

    span_id: list[str] = Field(description="16 lowercase hex characters each")
    parent_index: list[int] = Field(
        description="Row of the parent; -1 a root, -2 a parent the trace does not hold"
    )
    start_offset_ns: list[int] = Field(description="ns after the trace's start_ns")
    duration_ns: list[int] = Field(description="ns")
    service: list[int] = Field(description="Indices into dictionaries.service")
    name: list[int] = Field(description="Indices into dictionaries.name")
    kind: list[int] = Field(description="Indices into dictionaries.kind")
    status: list[int] = Field(description="Indices into dictionaries.status")


class TraceColumns(Answer):
    """``GET /api/v1/traces/{trace_id}?format=columns``: what a waterfall draws of every span, one list per
    column (about 70 bytes per span against about 400 as ``Span`` objects)."""

    trace_id: str = Field(description="32 lowercase hex characters")
    span_count: int
    start_ns: int = Field(description="The trace's first start, ns since the epoch")
    dictionaries: TraceDictionaries
    columns: TraceColumnLists
    spans: list[Span] | MISSING = Field(
        default=MISSING, description="The full spans (same order), only when span_count <= spans_up_to"
    )


# --- logs, search, dependencies --------------------------------------------------------------------------


class LogsAnswer(Answer):
    """``GET /api/v1/traces/{trace_id}/logs``: log records carrying the trace's id."""

    logs: list[LogRecord]


class TraceSearchAnswer(Answer):
    """``GET /api/v1/traces``: traces matching the search, newest first."""

    traces: list[TraceSummary]


class Edge(ApiModel):
    """Calls from one service to another in the window; counts estimate all traffic (by sample weight)."""

    parent: str = Field(description="The calling service")
    child: str = Field(
        description="The called service, or an uninstrumented peer (peer.service, db.system...)"
    )
    calls: int
    errors: int
    p99_ms: float = Field(description="Weighted p99 of the calls' duration, ms")
    uninstrumented: bool = Field(description="The child sends no spans: named by its caller's client span")


class DependenciesAnswer(Answer):
    """``GET /api/v1/dependencies``: the service graph, busiest edge first."""

    edges: list[Edge]

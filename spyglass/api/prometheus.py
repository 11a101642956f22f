"""``GET /metrics``: this member's own health and span-derived RED metrics in the Prometheus exposition format.

A collector reads the figures the satellite already keeps at each scrape, so there is no second set of values
to keep in step; ``prometheus_client`` writes the format (escaping, content negotiation) so spyglass need not.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from spyglass import __version__
from spyglass.api.context import ApiContext
from spyglass.model.figures import HISTOGRAM_BOUNDS_S, RedTotals, StorageStatus

_SERIES_LABELS = ("service", "operation")


def router(ctx: ApiContext) -> APIRouter:
    """``/metrics``, read by a collector of its own at each scrape."""
    # A registry of its own: the process-wide default one would also expose whatever else registers there.
    registry = CollectorRegistry()
    registry.register(SpyglassCollector(ctx))
    api = APIRouter(tags=["prometheus"])

    @api.get(
        "/metrics",
        response_class=PlainTextResponse,
        summary="This member's health and RED metrics, in Prometheus text format (OpenMetrics on request)",
    )
    def prometheus(request: Request) -> Response:
        # Prometheus scrapes every member and sums across them itself, so each reports only its own figures.
        # OpenMetrics when the scraper asks for it; otherwise text format 0.0.4, as spyglass has always served.
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(registry), media_type=content_type)

    return api


class SpyglassCollector:
    """Health gauges and counters, then RED metrics per service and operation, read at scrape time."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        satellite = self.ctx.satellite
        counters = satellite.counters
        recall = satellite.recall_figures()
        build_info = GaugeMetricFamily(
            "spyglass_build_info", "The running spyglass version.", labels=["version"]
        )
        build_info.add_metric([__version__], 1)
        yield build_info
        yield CounterMetricFamily(
            "spyglass_spans_received_total",
            "Spans applied to the recall buffer and the aggregates.",
            counters.spans_received,
        )
        yield CounterMetricFamily(
            "spyglass_spans_rejected_total",
            "Spans refused: invalid, or intake full (429).",
            counters.spans_rejected,
        )
        yield CounterMetricFamily(
            "spyglass_traces_decided_total", "Traces the sampler decided.", counters.traces_decided
        )
        yield CounterMetricFamily(
            "spyglass_traces_kept_total", "Traces the sampler kept.", counters.traces_kept
        )
        yield CounterMetricFamily(
            "spyglass_spans_stored_total", "Spans written to the store.", counters.spans_stored
        )
        yield CounterMetricFamily(
            "spyglass_write_failures_total",
            "Store writes that failed (spans after all retries; rollups per attempt).",
            counters.write_failures,
        )
        yield CounterMetricFamily(
            "spyglass_spans_unwritable_total",
            "Kept spans the store refused for what they hold; each was isolated and the rest of its write stored.",
            counters.spans_unwritable,
        )
        yield CounterMetricFamily(
            "spyglass_spans_write_failed_total",
            "Kept spans given up after the store kept failing for the whole retry bound.",
            counters.spans_write_failed,
        )
        yield GaugeMetricFamily(
            "spyglass_intake_queue_spans",
            "Spans accepted by receivers and waiting for the satellite.",
            satellite.queued_spans,
        )
        yield GaugeMetricFamily(
            "spyglass_recall_buffer_bytes", "Bytes held by the recall buffer.", recall.bytes
        )
        yield GaugeMetricFamily(
            "spyglass_recall_buffer_spans", "Spans held by the recall buffer.", recall.spans
        )
        yield GaugeMetricFamily(
            "spyglass_recall_buffer_peak_bytes",
            "Highest bytes the recall buffer has held.",
            recall.peak_bytes,
        )
        yield GaugeMetricFamily(
            "spyglass_recall_buffer_max_bytes",
            "The recall buffer's bound (--recall-memory-mb).",
            recall.max_bytes,
        )
        logs = self.ctx.log_counters
        if logs is not None:
            yield CounterMetricFamily(
                "spyglass_log_records_received_total", "Log records accepted.", logs.received
            )
            yield CounterMetricFamily(
                "spyglass_log_records_stored_total", "Log records written to the store.", logs.stored
            )
            yield CounterMetricFamily(
                "spyglass_log_records_unwritable_total",
                "Log records the store refused for what they hold; the rest of their write was stored.",
                logs.unwritable,
            )
            yield CounterMetricFamily(
                "spyglass_log_records_write_failed_total",
                "Log records given up after the store kept failing for the whole retry bound.",
                logs.write_failed,
            )
        aggregates = satellite.aggregate_figures()
        yield CounterMetricFamily(
            "spyglass_aggregator_spans_total",
            "Spans counted into the rollups (every accepted span).",
            aggregates.spans_aggregated,
        )
        yield GaugeMetricFamily(
            "spyglass_aggregator_open_buckets",
            "Rollup time buckets held in memory until they close.",
            aggregates.open_buckets,
        )
        if self.ctx.storage is not None:
            yield from _storage_families(self.ctx.storage())
        yield from _red_families(aggregates.totals)


def _storage_families(storage: StorageStatus) -> tuple[Metric, ...]:
    """The store on disk, the oldest data held, the retention settings and what retention did."""
    figures, policy, done = storage.figures, storage.policy, storage.counters
    oldest = GaugeMetricFamily(
        "spyglass_store_oldest_timestamp_seconds",
        "Time of the oldest data the store holds, by kind (absent when it holds none).",
        labels=["data"],
    )
    for data, oldest_ns in (
        ("spans", figures.oldest_span_ns),
        ("logs", figures.oldest_log_ns),
        ("rollups", figures.oldest_rollup_ns),
    ):
        if oldest_ns is not None:
            oldest.add_metric([data], oldest_ns / 1e9)
    retention = GaugeMetricFamily(
        "spyglass_retention_seconds", "How long the store keeps each kind of data.", labels=["data"]
    )
    for data, seconds in (
        ("spans", policy.retention_s),
        ("logs", policy.retention_s),
        ("rollups", policy.rollup_retention_s),
    ):
        retention.add_metric([data], seconds)
    expired = CounterMetricFamily(
        "spyglass_retention_deleted_rows", "Rows retention deleted, by kind of data.", labels=["data"]
    )
    for data, rows in (
        ("spans", done.spans_expired),
        ("logs", done.logs_expired),
        ("rollups", done.rollup_rows_expired),
    ):
        expired.add_metric([data], rows)
    return (
        GaugeMetricFamily("spyglass_store_disk_bytes", "Bytes of the store on disk.", figures.disk_bytes),
        GaugeMetricFamily(
            "spyglass_store_free_bytes",
            "Bytes of the store's file freed by retention, reused by the next writes.",
            figures.free_bytes,
        ),
        oldest,
        retention,
        expired,
        CounterMetricFamily(
            "spyglass_rollup_rows_downsampled",
            "Stored rollup rows merged into coarser buckets as they aged.",
            done.rollup_rows_downsampled,
        ),
        CounterMetricFamily("spyglass_retention_passes", "Retention passes run.", done.passes),
        GaugeMetricFamily(
            "spyglass_retention_longest_step_seconds",
            "The longest one retention step took (it holds the store's writer at most that long).",
            done.longest_step_s,
        ),
        CounterMetricFamily(
            "spyglass_store_compactions",
            "Times the store's file was rewritten to give deleted rows' space back (DuckDB).",
            done.compactions,
        ),
        CounterMetricFamily(
            "spyglass_store_compacted_bytes",
            "Bytes compactions gave back to the filesystem.",
            done.bytes_compacted,
        ),
        GaugeMetricFamily(
            "spyglass_store_last_compaction_pause_seconds",
            "How long writes waited for the last compaction's exchange of files.",
            done.last_compaction_pause_s,
        ),
    )


def _red_families(totals: list[RedTotals]) -> tuple[Metric, ...]:
    """Requests, errors and the duration histogram of every (service, operation) since start."""
    requests = CounterMetricFamily(
        "spyglass_span_requests_total", "Spans received, per service and operation.", labels=_SERIES_LABELS
    )
    errors = CounterMetricFamily(
        "spyglass_span_errors_total",
        "Spans with status ERROR, per service and operation.",
        labels=_SERIES_LABELS,
    )
    durations = HistogramMetricFamily(
        "spyglass_span_duration_seconds", "Span durations, per service and operation.", labels=_SERIES_LABELS
    )
    for t in totals:
        series = [t.service, t.operation]
        requests.add_metric(series, t.count)
        errors.add_metric(series, t.errors)
        buckets: list[tuple[str, float]] = []
        cumulative = 0
        for bound, count in zip(HISTOGRAM_BOUNDS_S, t.buckets, strict=True):
            cumulative += count
            # repr, not prometheus_client's float formatting: keeps the ``le`` values scrapes already hold.
            buckets.append((repr(bound), cumulative))
        buckets.append(("+Inf", t.count))
        durations.add_metric(series, buckets, t.duration_sum_s)
    return requests, errors, durations

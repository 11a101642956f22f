"""Metrics routes: ``GET /api/v1/metrics`` (JSON RED metrics from the rollups) and ``GET /metrics``
(Prometheus text exposition: spyglass's own health and span-derived RED metrics).

The exposition format is small enough to write by hand (label escaping and ``# HELP``/``# TYPE`` lines), which
saves a dependency and a second registry of values the satellite already keeps.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spyglass import __version__
from spyglass.analysis.metrics import MetricsQuery, data_coverage, query_metrics, with_rates
from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.params import MAX_STEP_S, BadRequest, optional_int
from spyglass.api.v1 import window
from spyglass.satellite.aggregator import HISTOGRAM_BOUNDS_S
from spyglass.satellite.log_writer import LogWriter
from spyglass.satellite.pipeline import Satellite

#: A series longer than this is refused (400): ask for a larger ``step_s`` or a shorter window.
MAX_SERIES_POINTS = 5_000
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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

    def prometheus(request: Request) -> Response:
        # This member's own figures: Prometheus scrapes every member, and sums across them itself.
        return Response(
            prometheus_text(ctx.own_satellite, ctx.log_writer), media_type=PROMETHEUS_CONTENT_TYPE
        )

    return [Route("/api/v1/metrics", metrics), Route("/metrics", prometheus)]


def escape_label_value(value: str) -> str:
    """Label values as the text format wants them: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in pairs)
    return "{" + inner + "}" if inner else ""


def _family(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def prometheus_text(satellite: Satellite, log_writer: LogWriter | None = None) -> str:
    """The whole exposition: health gauges and counters first, then RED metrics per service/operation."""
    counters = satellite.counters
    buffer = satellite.buffer
    lines: list[str] = []

    def single(name: str, kind: str, help_text: str, value: float) -> None:
        lines.extend(_family(name, kind, help_text))
        lines.append(f"{name} {_number(value)}")

    lines.extend(_family("spyglass_build_info", "gauge", "The running spyglass version."))
    lines.append(f"spyglass_build_info{_labels([('version', __version__)])} 1")
    single(
        "spyglass_spans_received_total",
        "counter",
        "Spans applied to the recall buffer and the aggregates.",
        counters.spans_received,
    )
    single(
        "spyglass_spans_rejected_total",
        "counter",
        "Spans refused: invalid, or intake full (429).",
        counters.spans_rejected,
    )
    single("spyglass_traces_decided_total", "counter", "Traces the sampler decided.", counters.traces_decided)
    single("spyglass_traces_kept_total", "counter", "Traces the sampler kept.", counters.traces_kept)
    single("spyglass_spans_stored_total", "counter", "Spans written to the store.", counters.spans_stored)
    single(
        "spyglass_write_failures_total",
        "counter",
        "Store writes that failed (spans after all retries; rollups per attempt).",
        counters.write_failures,
    )
    single(
        "spyglass_spans_unwritable_total",
        "counter",
        "Kept spans the store refused for what they hold; each was isolated and the rest of its write stored.",
        counters.spans_unwritable,
    )
    single(
        "spyglass_spans_write_failed_total",
        "counter",
        "Kept spans given up after the store kept failing for the whole retry bound.",
        counters.spans_write_failed,
    )
    single(
        "spyglass_intake_queue_spans",
        "gauge",
        "Spans accepted by receivers and waiting for the satellite.",
        satellite.queued_spans,
    )
    single("spyglass_recall_buffer_bytes", "gauge", "Bytes held by the recall buffer.", buffer.nbytes)
    single("spyglass_recall_buffer_spans", "gauge", "Spans held by the recall buffer.", buffer.spans)
    single(
        "spyglass_recall_buffer_peak_bytes",
        "gauge",
        "Highest bytes the recall buffer has held.",
        buffer.peak_bytes,
    )
    single(
        "spyglass_recall_buffer_max_bytes",
        "gauge",
        "The recall buffer's bound (--recall-memory-mb).",
        buffer.max_bytes,
    )
    if log_writer is not None:
        logs = log_writer.counters
        single("spyglass_log_records_received_total", "counter", "Log records accepted.", logs.received)
        single(
            "spyglass_log_records_stored_total", "counter", "Log records written to the store.", logs.stored
        )
        single(
            "spyglass_log_records_unwritable_total",
            "counter",
            "Log records the store refused for what they hold; the rest of their write was stored.",
            logs.unwritable,
        )
        single(
            "spyglass_log_records_write_failed_total",
            "counter",
            "Log records given up after the store kept failing for the whole retry bound.",
            logs.write_failed,
        )
    aggregator = satellite.aggregator
    single(
        "spyglass_aggregator_spans_total",
        "counter",
        "Spans counted into the rollups (every accepted span).",
        aggregator.spans_aggregated,
    )
    single(
        "spyglass_aggregator_open_buckets",
        "gauge",
        "Rollup time buckets held in memory until they close.",
        aggregator.pending_buckets,
    )

    totals = aggregator.totals()
    lines.extend(
        _family("spyglass_span_requests_total", "counter", "Spans received, per service and operation.")
    )
    for t in totals:
        lines.append(f"spyglass_span_requests_total{_labels(_series(t.service, t.operation))} {t.count}")
    lines.extend(
        _family(
            "spyglass_span_errors_total", "counter", "Spans with status ERROR, per service and operation."
        )
    )
    for t in totals:
        lines.append(f"spyglass_span_errors_total{_labels(_series(t.service, t.operation))} {t.errors}")
    name = "spyglass_span_duration_seconds"
    lines.extend(_family(name, "histogram", "Span durations, per service and operation."))
    for t in totals:
        series = _series(t.service, t.operation)
        cumulative = 0
        for bound, count in zip(HISTOGRAM_BOUNDS_S, t.buckets, strict=True):
            cumulative += count
            lines.append(f"{name}_bucket{_labels([*series, ('le', repr(bound))])} {cumulative}")
        lines.append(f"{name}_bucket{_labels([*series, ('le', '+Inf')])} {t.count}")
        lines.append(f"{name}_sum{_labels(series)} {_number(t.duration_sum_s)}")
        lines.append(f"{name}_count{_labels(series)} {t.count}")
    return "\n".join(lines) + "\n"


def _series(service: str, operation: str) -> list[tuple[str, str]]:
    return [("service", service), ("operation", operation)]

"""What a satellite reports about itself: counters since start, the recall buffer's size, the aggregator's
totals. Plain values, shared by the satellite that keeps them and the API that shows them (``/api/v1/status``,
``/metrics``), so the API needs nothing of the satellite but these."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SatelliteCounters:
    """What ``/api/v1/status`` reports; written by the satellite's own threads only."""

    spans_received: int = 0
    spans_rejected: int = 0
    traces_decided: int = 0
    traces_kept: int = 0
    spans_stored: int = 0
    late_spans: int = 0
    #: store writes (of kept spans) that lost rows: refused rows isolated, or given up after the retry bound
    write_failures: int = 0
    #: kept spans the store refused for what they hold (each isolated; the rest of its batch was written)
    spans_unwritable: int = 0
    #: kept spans given up after the retry bound because the store kept failing
    spans_write_failed: int = 0


@dataclass
class LogCounters:
    """Log records since start, by what became of them."""

    received: int = 0  # accepted and queued
    rejected: int = 0  # invalid records (an OTLP partial success)
    dropped: int = 0  # records without trace context: not kept, by policy
    stored: int = 0
    write_failures: int = 0  # writes that lost records (refused ones, or given up after the retry bound)
    unwritable: int = 0  # records the store refused for what they hold; the rest of their batch was written
    write_failed: int = 0  # records given up after the retry bound because the store kept failing


@dataclass(frozen=True)
class RecallFigures:
    """The recall buffer's size against its bound, for status and ``/metrics``."""

    spans: int
    bytes: int
    undecided_spans: int
    max_bytes: int
    peak_bytes: int


@dataclass(frozen=True)
class AggregateFigures:
    """What the aggregator has counted since start: every accepted span, and the RED totals per series."""

    spans_aggregated: int
    open_buckets: int
    totals: list[RedTotals]


#: Upper bounds (seconds) of the Prometheus latency histogram.
HISTOGRAM_BOUNDS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


@dataclass
class RedTotals:
    """Spans, errors and latency of one (service, operation) since the process started."""

    service: str
    operation: str
    count: int = 0
    errors: int = 0
    duration_sum_s: float = 0.0  # from sketch bin values: within the sketch's relative accuracy
    #: Spans with duration <= each of ``HISTOGRAM_BOUNDS_S`` (not cumulative; +Inf is ``count``).
    buckets: list[int] = field(default_factory=lambda: [0] * len(HISTOGRAM_BOUNDS_S))

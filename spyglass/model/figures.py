"""What a satellite reports about itself: counters since start, the recall buffer's size, the aggregator's
totals. Plain values, shared by the satellite that keeps them and the API that shows them (``/api/v1/status``,
``/metrics``), so the API needs nothing of the satellite but these."""

from __future__ import annotations

from dataclasses import dataclass, field

from spyglass.model.retention import RetentionPolicy


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


@dataclass(frozen=True)
class StorageFigures:
    """What a store holds on disk and since when, as the store itself reports it."""

    #: Bytes of the store's files (DuckDB: the database file and its write-ahead log; ClickHouse: active parts)
    disk_bytes: int
    #: Of those, bytes freed by deletions and reused by the next writes before the file grows
    free_bytes: int
    #: The oldest span start, log record time and rollup bucket start held; None when there is none
    oldest_span_ns: int | None
    oldest_log_ns: int | None
    oldest_rollup_ns: int | None


@dataclass
class RetentionCounters:
    """What the retention worker has done since start; written by its own thread only."""

    spans_expired: int = 0
    logs_expired: int = 0
    rollup_rows_expired: int = 0
    #: Stored rollup rows merged into coarser buckets (each pass's fine rows, gone once merged)
    rollup_rows_downsampled: int = 0
    #: Short transactions (one time slice each) and full passes run
    steps: int = 0
    passes: int = 0
    #: When the last pass ended; None before the first
    last_pass_ns: int | None = None
    #: The longest a single step took, seconds (a step holds the store's writer at most that long)
    longest_step_s: float = 0.0
    #: Times the store's file was rewritten to give freed space back (DuckDB), and the bytes that gave back
    compactions: int = 0
    bytes_compacted: int = 0
    #: The last compaction's copy (nothing waits for it) and how long writes waited for it, seconds
    last_compaction_copy_s: float = 0.0
    last_compaction_pause_s: float = 0.0


@dataclass(frozen=True)
class StorageStatus:
    """What status and ``/metrics`` show of storage: the store's figures, the policy, what retention did."""

    figures: StorageFigures
    policy: RetentionPolicy
    counters: RetentionCounters

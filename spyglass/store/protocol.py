"""The store interface every backend implements (DuckDB by default, ClickHouse when one machine is not enough).

Analysis and the API read only through these verbs and get Arrow tables back, so they never care which
backend answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

#: One row per trace, as ``find_traces`` returns them.
TRACE_SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("trace_id", pa.binary(16), nullable=False),
        pa.field("root_service", pa.string()),  # null while the root span has not been seen
        pa.field("root_operation", pa.string()),
        pa.field("start_ns", pa.int64(), nullable=False),  # earliest span start
        pa.field("duration_ns", pa.int64(), nullable=False),  # latest span end - earliest span start
        pa.field("span_count", pa.int64(), nullable=False),
        pa.field("error_count", pa.int64(), nullable=False),
        pa.field("sample_weight", pa.float64(), nullable=False),
    ]
)


@dataclass(frozen=True)
class TraceQuery:
    """A trace search. ``service``/``operation`` match the root span; ``attributes`` match any span of the
    trace, on its span attributes or its resource; durations are of the whole trace; ``start_ns`` (inclusive)
    and ``end_ns`` (exclusive) bound the trace's start."""

    service: str | None = None
    operation: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    error: bool | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    limit: int = 20
    #: Jaeger semantics: when set, one span of the trace must carry ``service``, ``operation`` and the
    #: duration bounds together (durations are then that span's), and each attribute may be on any span.
    match_any_span: bool = False


@dataclass(frozen=True)
class ScanFilter:
    """Equality filters for ``scan``: column or ``attributes[key]`` / ``resource[key]`` values."""

    service: str | None = None
    operation: str | None = None
    attributes: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class Store(Protocol):
    """Where kept traces live. Writes come whole from the satellite; reads return Arrow tables."""

    def write(self, spans: pa.Table) -> None:
        """Append spans (``STORED_SPAN_SCHEMA``) durably; returns once committed. Spans are not deduplicated:
        the satellite writes each kept trace once."""
        ...

    def trace(self, trace_id: bytes) -> pa.Table:
        """All stored spans of one trace (``STORED_SPAN_SCHEMA``), empty when unknown."""
        ...

    def find_traces(self, query: TraceQuery) -> pa.Table:
        """Trace summaries (``TRACE_SUMMARY_SCHEMA``) matching the query, newest first, at most ``limit``."""
        ...

    def scan(
        self, columns: list[str], start_ns: int, end_ns: int, filters: ScanFilter | None = None
    ) -> pa.Table:
        """Stored spans whose start is in ``[start_ns, end_ns)``, only the named columns, for analysis."""
        ...

    def services(self) -> list[str]:
        """Every service name seen in stored spans, sorted."""
        ...

    def operations(self, service: str) -> list[tuple[str, int]]:
        """``(operation, kind)`` pairs of one service, sorted."""
        ...

    def span_count(self) -> int:
        """How many spans are stored."""
        ...

    def close(self) -> None:
        """Flush and release the backend."""
        ...

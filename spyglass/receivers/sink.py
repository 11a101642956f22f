"""What receivers hand decoded spans to. Receivers know this verb and nothing of what lies behind it."""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa


class SpanSink(Protocol):
    """The satellite, seen from a receiver."""

    def submit(self, batch: pa.RecordBatch) -> bool:
        """Queue a batch; False means overloaded: refuse with 429 / RESOURCE_EXHAUSTED."""
        ...

    def count_rejected(self, spans: int) -> None:
        """Record spans refused as invalid."""
        ...

    def accepting(self) -> bool:
        """Whether a new export may be admitted at all: False refuses it before decoding."""
        ...


class LogSink(Protocol):
    """Where receivers hand decoded log records (``spyglass.model.log_schema.LOG_SCHEMA``)."""

    def submit_logs(self, batch: pa.RecordBatch) -> bool:
        """Queue a batch of log records; False means overloaded: refuse with 429 / RESOURCE_EXHAUSTED."""
        ...

    def count_logs(self, *, rejected: int = 0, dropped: int = 0) -> None:
        """Record log records refused as invalid, and those dropped for carrying no trace context."""
        ...

    def accepting_logs(self) -> bool:
        """Whether a new logs export may be admitted at all: False refuses it before decoding."""
        ...

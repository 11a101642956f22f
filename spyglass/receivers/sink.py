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

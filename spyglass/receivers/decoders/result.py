"""What a decoder returns, and the one error type it raises."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


class DecodeError(ValueError):
    """The payload cannot be accepted at all; the message names what is wrong (sent back as 400)."""


@dataclass(frozen=True)
class DecodeResult:
    """Accepted spans, and how many were rejected and why (an OTLP partial success)."""

    batch: pa.RecordBatch
    rejected_spans: int = 0
    error_message: str = ""

"""The common path of every HTTP receiver: authenticate, read, decode, hand to the satellite, say why not."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from starlette.requests import Request

from spyglass.receivers.decoders.result import DecodeError, DecodeResult
from spyglass.receivers.http_body import read_body
from spyglass.receivers.sink import SpanSink
from spyglass.security import bearer_ok

#: What a decoder returns: span or log batches.
Decoded = TypeVar("Decoded")

#: Seconds a refused client is told to wait before retrying (OTLP's Retry-After).
RETRY_AFTER_S = 1


@dataclass(frozen=True)
class ReceiverSettings:
    """What every receiver needs: where spans go, the body bound, the ingest token."""

    sink: SpanSink
    max_body_bytes: int
    ingest_token: str | None = None


class Outcome(Enum):
    ACCEPTED = "accepted"
    UNAUTHENTICATED = "unauthenticated"
    INVALID = "invalid"
    OVERLOADED = "overloaded"


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    message: str = ""
    accepted_spans: int = 0
    rejected_spans: int = 0


def accept(result: DecodeResult, settings: ReceiverSettings) -> IngestResult:
    """Hand a decoded batch to the sink; shared by the HTTP and gRPC receivers."""
    if result.rejected_spans:
        settings.sink.count_rejected(result.rejected_spans)
    if result.batch.num_rows and not settings.sink.submit(result.batch):
        return IngestResult(Outcome.OVERLOADED, "spyglass is overloaded; retry later")
    return IngestResult(Outcome.ACCEPTED, result.error_message, result.batch.num_rows, result.rejected_spans)


async def receive(
    request: Request, settings: ReceiverSettings, decode: Callable[[bytes], Decoded]
) -> Decoded | IngestResult:
    """Authentication, bounded reading and decoding of one HTTP export (spans or logs): what it decoded to,
    or why it was refused."""
    if not bearer_ok(request.headers.get("authorization"), settings.ingest_token):
        return IngestResult(Outcome.UNAUTHENTICATED, "missing or wrong bearer token")
    try:
        body = await read_body(request, settings.max_body_bytes)
        return decode(body)
    except DecodeError as exc:
        return IngestResult(Outcome.INVALID, str(exc))


async def ingest(
    request: Request, settings: ReceiverSettings, decode: Callable[[bytes], DecodeResult]
) -> IngestResult:
    """Run one HTTP export request through authentication, bounded reading, decoding and submission."""
    result = await receive(request, settings, decode)
    return result if isinstance(result, IngestResult) else accept(result, settings)

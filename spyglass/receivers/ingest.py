"""The common path of every HTTP receiver: authenticate, read, decode, hand to the satellite, say why not."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum

from starlette.requests import Request

from spyglass.receivers.admission import Admission
from spyglass.receivers.decode_workers import Decoded, DecodeThreads, DecodeWorkers
from spyglass.receivers.decoders.result import DecodeError, DecodeResult
from spyglass.receivers.http_body import (
    BodyTooLarge,
    Refused,
    content_encoding,
    discard_body,
    read_body,
)
from spyglass.receivers.sink import SpanSink
from spyglass.security import bearer_ok

#: Seconds a refused client is told to wait before retrying (OTLP's Retry-After).
RETRY_AFTER_S = 1


@dataclass(frozen=True)
class ReceiverSettings:
    """What every receiver needs: where spans go, the body bound, the ingest token, its in-flight bound
    (default: none) and the workers that decode off the event loop (default: asyncio's default executor)."""

    sink: SpanSink
    max_body_bytes: int
    ingest_token: str | None = None
    admission: Admission = field(default_factory=Admission.unbounded)
    decode_pool: DecodeWorkers = field(default_factory=DecodeThreads)

    def bounded(
        self, max_bytes: int, max_exports: int, room: Callable[[], bool] | None = None
    ) -> ReceiverSettings:
        """The same settings with an in-flight bound of their own (one per receiver); ``room`` says whether the
        sink can take more (default: the span sink's intake)."""
        return replace(self, admission=Admission(max_bytes, max_exports, room or self.sink.accepting))

    def with_room(self, room: Callable[[], bool]) -> ReceiverSettings:
        """The same bounds, counted apart, for a receiver whose exports go to another sink (logs)."""
        return self.bounded(self.admission.max_bytes, self.admission.max_exports, room)


class Outcome(Enum):
    """How an export ended; each receiver maps it to its status (``HTTP_STATUS`` for HTTP, gRPC codes)."""

    ACCEPTED = "accepted"
    UNAUTHENTICATED = "unauthenticated"
    INVALID = "invalid"
    TOO_LARGE = "too_large"
    OVERLOADED = "overloaded"


#: The one map from an export's outcome to its HTTP status, for every HTTP receiver (OTLP, Zipkin, peers).
HTTP_STATUS = {
    Outcome.ACCEPTED: 200,
    Outcome.UNAUTHENTICATED: 401,
    Outcome.INVALID: 400,
    Outcome.TOO_LARGE: 413,  # as the OTLP/HTTP specification asks of a body over the server's limit
    Outcome.OVERLOADED: 429,
}


@dataclass(frozen=True)
class IngestResult:
    """One export's outcome, with its message and how many spans were taken or refused."""

    outcome: Outcome
    message: str = ""
    accepted_spans: int = 0
    rejected_spans: int = 0


#: The answer to an export refused at the door, before decoding.
BUSY = IngestResult(Outcome.OVERLOADED, "spyglass is busy with other exports; retry later")


def accept(result: DecodeResult, settings: ReceiverSettings) -> IngestResult:
    """Hand a decoded batch to the sink; shared by the HTTP and gRPC receivers."""
    if result.rejected_spans:
        settings.sink.count_rejected(result.rejected_spans)
    if result.batch.num_rows and not settings.sink.submit(result.batch):
        return IngestResult(Outcome.OVERLOADED, "spyglass's intake is full; retry later")
    return IngestResult(Outcome.ACCEPTED, result.error_message, result.batch.num_rows, result.rejected_spans)


async def receive(
    request: Request, settings: ReceiverSettings, decode: Callable[[bytes], Decoded]
) -> Decoded | IngestResult:
    """Authentication, admission, bounded reading and decoding (off the event loop) of one HTTP export (spans
    or logs): what it decoded to, or why it was refused."""
    if not bearer_ok(request.headers.get("authorization"), settings.ingest_token):
        return IngestResult(Outcome.UNAUTHENTICATED, "missing or wrong bearer token")
    ticket = settings.admission.enter()
    if ticket is None:
        await discard_body(request, settings.max_body_bytes)
        return BUSY
    try:
        body = await read_body(request, settings.max_body_bytes, ticket.grow)
        encoding = content_encoding(request)
        return await settings.decode_pool.run(decode, body, encoding, settings.max_body_bytes)
    except Refused:
        await discard_body(request, settings.max_body_bytes)
        return BUSY
    except BodyTooLarge as exc:
        return IngestResult(Outcome.TOO_LARGE, str(exc))
    except DecodeError as exc:
        return IngestResult(Outcome.INVALID, str(exc))
    finally:
        ticket.release()


async def ingest(
    request: Request, settings: ReceiverSettings, decode: Callable[[bytes], DecodeResult]
) -> IngestResult:
    """Run one HTTP export request through authentication, bounded reading, decoding and submission."""
    result = await receive(request, settings, decode)
    return result if isinstance(result, IngestResult) else accept(result, settings)

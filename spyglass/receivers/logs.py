"""The common path of the OTLP logs receivers (HTTP and gRPC): authenticate, read, decode, hand to the sink.

Records without trace context are dropped by the decoder and only counted: the export still succeeds, with a
warning in the partial-success message (``rejected_log_records`` 0), as OTLP allows.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request

from spyglass.receivers.decoders.otlp_logs import LogDecodeResult
from spyglass.receivers.ingest import IngestResult, Outcome, ReceiverSettings, receive
from spyglass.receivers.sink import LogSink


def accept_logs(result: LogDecodeResult, sink: LogSink) -> IngestResult:
    """Hand decoded log records to the sink; ``rejected_spans`` of the answer counts rejected records."""
    sink.count_logs(rejected=result.rejected_spans, dropped=result.dropped_records)
    if result.batch.num_rows and not sink.submit_logs(result.batch):
        return IngestResult(Outcome.OVERLOADED, "spyglass is overloaded; retry later")
    message = result.error_message
    if result.dropped_records:
        note = (
            f"{result.dropped_records} log records without a trace id were dropped: "
            "spyglass keeps only logs that correlate with traces"
        )
        message = f"{message}; {note}" if message else note
    return IngestResult(Outcome.ACCEPTED, message, result.batch.num_rows, result.rejected_spans)


async def ingest_logs(
    request: Request,
    settings: ReceiverSettings,
    sink: LogSink,
    decode: Callable[[bytes], LogDecodeResult],
) -> IngestResult:
    """One HTTP logs export through authentication, bounded reading, decoding and submission."""
    result = await receive(request, settings, decode)
    return result if isinstance(result, IngestResult) else accept_logs(result, sink)
